//! The one place Almanac's errors become Python exceptions.
//!
//! `AlmanacError` is the base; each subclass says who can fix it:
//! `DefinitionError` (the repo's YAML: carries `diagnostics`, each with
//! file, line, column, message and help, and prints like the CLI),
//! `NotFoundError` (an unknown name, nothing applied yet, no repo),
//! `InvalidInputError` (the arguments or the data passed in),
//! `StoreUnavailableError` (a store that does not answer: retry later),
//! `ConflictError` (someone else holds a lock this call needs, or applied
//! in between: concurrent applies give one success and one conflict). Anything
//! else is an `AlmanacError` whose message says what failed. A Rust panic
//! never crosses the boundary as one: PyO3 turns it into `PanicException`,
//! and no path here panics on input.

use almanac::Error;
use almanac::offline::OfflineError;
use almanac::registry::RegistryError;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

pyo3::create_exception!(almanac, AlmanacError, PyException, "Base class of every error Almanac raises.");
pyo3::create_exception!(almanac, DefinitionError, AlmanacError, "Mistakes in the repo's definitions, each located (file:line:col) with a fix; see `diagnostics`.");
pyo3::create_exception!(almanac, NotFoundError, AlmanacError, "An unknown feature view, feature, service or source, or a repo never applied.");
pyo3::create_exception!(almanac, InvalidInputError, AlmanacError, "Arguments or data that do not fit (a missing column, a wrong type, a bad timestamp).");
pyo3::create_exception!(almanac, StoreUnavailableError, AlmanacError, "An online store that does not answer (retry later).");
pyo3::create_exception!(almanac, ConflictError, AlmanacError, "Another process holds a lock this call needs (a materialization of the same view).");

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.add("AlmanacError", py.get_type::<AlmanacError>())?;
    module.add("DefinitionError", py.get_type::<DefinitionError>())?;
    module.add("NotFoundError", py.get_type::<NotFoundError>())?;
    module.add("InvalidInputError", py.get_type::<InvalidInputError>())?;
    module.add("StoreUnavailableError", py.get_type::<StoreUnavailableError>())?;
    module.add("ConflictError", py.get_type::<ConflictError>())?;
    Ok(())
}

/// The exception for `error`, with the CLI's message.
pub fn to_py(error: Error) -> PyErr {
    let message = error.to_string();
    match &error {
        Error::Definitions(diagnostics) => definition_error(message, diagnostics),
        Error::Unknown { .. } | Error::NotApplied | Error::NotOnline { .. } => NotFoundError::new_err(message),
        Error::BadRequest(_) | Error::Push(_) | Error::Convert(_) => InvalidInputError::new_err(message),
        Error::Offline(offline) if is_callers_input(offline) => InvalidInputError::new_err(message),
        Error::Busy { .. } | Error::Registry(RegistryError::Locked { .. } | RegistryError::Conflict { .. }) => ConflictError::new_err(message),
        Error::Registry(RegistryError::NotARepo { .. }) => NotFoundError::new_err(message),
        _ if error.is_unavailable() => StoreUnavailableError::new_err(message),
        _ => AlmanacError::new_err(message),
    }
}

/// Offline errors the caller's entity table or arguments cause.
fn is_callers_input(error: &OfflineError) -> bool {
    matches!(
        error,
        OfflineError::MissingColumn { .. } | OfflineError::KeyType { .. } | OfflineError::NotATimestamp { .. } | OfflineError::BadTimestamp { .. } | OfflineError::NameClash { .. } | OfflineError::ClashWithInput { .. }
    )
}

/// A `DefinitionError` whose `diagnostics` attribute lists each mistake as
/// a dict (`file`, `line`, `column`, `message`, `help`).
fn definition_error(message: String, diagnostics: &almanac::core::Diagnostics) -> PyErr {
    let error = DefinitionError::new_err(message);
    Python::attach(|py| {
        let list: Vec<_> = diagnostics
            .iter()
            .map(|d| {
                let entry = pyo3::types::PyDict::new(py);
                entry.set_item("file", d.location.file.display().to_string())?;
                entry.set_item("line", d.location.line)?;
                entry.set_item("column", d.location.column)?;
                entry.set_item("message", &d.message)?;
                entry.set_item("help", d.help.as_deref())?;
                Ok(entry)
            })
            .collect::<PyResult<_>>()?;
        error.value(py).setattr("diagnostics", list)
    })
    .map_or_else(|e| e, |()| error)
}
