//! Resolving feature references against the registry: the one path both
//! training (historical) and serving (online) take, so they can never
//! disagree about what `view:feature` means.

use almanac_core::{Definitions, FeatureRef, OnDemandFeatureView, suggest};
use almanac_offline::ViewRequest;
use almanac_registry::RegistryState;

use crate::error::Error;

/// What a request asks for: explicit references, or a feature service.
#[derive(Debug, Clone)]
pub enum FeatureSelection {
    Refs(Vec<FeatureRef>),
    Service(String),
}

impl FeatureSelection {
    /// Parse `view:feature,view` text (the CLI's `--features`).
    pub fn parse_refs(text: &str) -> Result<Self, Error> {
        let refs = text
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse::<FeatureRef>().map_err(|e| Error::BadRequest(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        if refs.is_empty() {
            return Err(Error::BadRequest("no features requested; pass --features view:feature[,...] or --feature-service NAME".into()));
        }
        Ok(FeatureSelection::Refs(refs))
    }

    /// The same selection with repeated references dropped (first one
    /// kept): a request naming one feature 100,000 times is one feature,
    /// and must cost (and be cached) as one.
    pub fn deduplicated(&self) -> FeatureSelection {
        match self {
            FeatureSelection::Service(name) => FeatureSelection::Service(name.clone()),
            FeatureSelection::Refs(refs) => {
                let mut seen = std::collections::HashSet::with_capacity(refs.len());
                FeatureSelection::Refs(refs.iter().filter(|r| seen.insert((r.view.as_str(), r.feature.as_deref()))).cloned().collect())
            }
        }
    }
}

/// The resolved request: per feature view (in first-appearance order) what
/// to read, the requested `(view, feature)` pairs in request order (a view
/// there may be an on-demand view), and the on-demand views requested.
pub struct Resolved {
    /// Feature views to read: the requested ones and the inputs of every
    /// requested on-demand view (an input view is read whole).
    pub views: Vec<ViewRequest>,
    pub order: Vec<(String, String)>,
    /// Requested on-demand views, in first-appearance order.
    pub on_demand: Vec<OnDemandFeatureView>,
}

impl Resolved {
    /// Whether `(view, feature)` names an on-demand feature.
    pub fn is_on_demand(&self, view: &str) -> bool {
        self.on_demand.iter().any(|v| v.name == view)
    }
}

fn unknown(what: &'static str, name: &str, candidates: Vec<&str>) -> Error {
    let help = suggest::closest(name, candidates.iter().copied()).map(|b| format!("did you mean `{b}`?"));
    Error::Unknown { what, name: name.to_string(), help }
}

pub fn resolve(state: &RegistryState, selection: &FeatureSelection) -> Result<Resolved, Error> {
    if state.version == 0 {
        return Err(Error::NotApplied);
    }
    let defs = &state.definitions;
    let refs = match selection {
        FeatureSelection::Refs(refs) => refs.clone(),
        FeatureSelection::Service(name) => {
            let service = defs.feature_service(name).ok_or_else(|| unknown("feature service", name, defs.feature_services.iter().map(|s| s.name.as_str()).collect()))?;
            defs.resolve_service(service)
        }
    };
    let mut order: Vec<(String, String)> = Vec::new();
    let mut on_demand: Vec<OnDemandFeatureView> = Vec::new();
    for reference in &refs {
        let Some(features) = defs.features_of(&reference.view) else {
            let names: Vec<&str> = defs.feature_views.iter().map(|v| v.name.as_str()).chain(defs.on_demand_feature_views.iter().map(|v| v.name.as_str())).collect();
            return Err(unknown("feature view", &reference.view, names));
        };
        let names: Vec<&str> = match &reference.feature {
            Some(feature) => {
                if !features.iter().any(|(name, _)| name == feature) {
                    let names: Vec<String> = features.iter().map(|(name, _)| format!("{}:{name}", reference.view)).collect();
                    return Err(unknown("feature", &reference.to_string(), names.iter().map(String::as_str).collect()));
                }
                vec![feature.as_str()]
            }
            None => features.iter().map(|(name, _)| *name).collect(),
        };
        for feature in names {
            let pair = (reference.view.clone(), feature.to_string());
            if !order.contains(&pair) {
                order.push(pair);
            }
        }
        if let Some(odfv) = defs.on_demand_feature_view(&reference.view)
            && !on_demand.iter().any(|v| v.name == odfv.name)
        {
            on_demand.push(odfv.clone());
        }
    }
    let mut views: Vec<ViewRequest> = Vec::new();
    for (view_name, feature) in &order {
        let Some(view) = defs.feature_view(view_name) else { continue };
        if !views.iter().any(|v| v.view.name == *view_name) {
            views.push(view_request(defs, view_name)?);
        }
        if let Some(request) = views.iter_mut().find(|v| v.view.name == *view_name)
            && !request.features.iter().any(|f| f.name == *feature)
        {
            request.features.extend(view.feature(feature).cloned());
        }
    }
    // The inputs of on-demand views are read whole, requested or not.
    for odfv in &on_demand {
        for source in &odfv.sources {
            let Some(view) = defs.feature_view(source) else { continue };
            if !views.iter().any(|v| v.view.name == *source) {
                views.push(view_request(defs, source)?);
            }
            if let Some(request) = views.iter_mut().find(|v| v.view.name == *source) {
                for field in &view.schema {
                    if !request.features.iter().any(|f| f.name == field.name) {
                        request.features.push(field.clone());
                    }
                }
            }
        }
    }
    Ok(Resolved { views, order, on_demand })
}

/// Everything needed to read one view, with no features requested yet.
pub fn view_request(defs: &Definitions, name: &str) -> Result<ViewRequest, Error> {
    let view = defs.feature_view(name).ok_or_else(|| unknown("feature view", name, defs.feature_views.iter().map(|v| v.name.as_str()).collect()))?;
    let source = defs.source(&view.source).ok_or_else(|| unknown("source", &view.source, vec![]))?;
    let join_keys = view
        .entities
        .iter()
        .filter_map(|e| defs.entity(e))
        .flat_map(|e| e.join_keys.iter().map(move |k| (e.name.clone(), k.clone())))
        .collect();
    Ok(ViewRequest { view: view.clone(), source: source.clone(), join_keys, features: Vec::new() })
}
