//! Resolving a source definition to files, and reading their schema cheaply.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use almanac_core::{FileFormat, Source};
use arrow::datatypes::{Schema, SchemaRef};
use parquet::arrow::parquet_to_arrow_schema;
use parquet::file::reader::{FileReader, SerializedFileReader};

/// How many CSV records are sampled to infer column types.
const CSV_SAMPLE_RECORDS: usize = 1_000;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("`{path}` does not exist (resolved to {})", resolved.display())]
    NotFound { path: String, resolved: PathBuf },

    #[error("`{path}` matches no Parquet or CSV files")]
    NoFiles { path: String },

    #[error("`{path}` holds files of several formats ({found}); set `format: parquet` or `format: csv` on the source")]
    MixedFormats { path: String, found: String },

    #[error("cannot tell the format of `{path}` from its extension; set `format: parquet` or `format: csv` on the source")]
    UnknownFormat { path: String },

    #[error("`{path}` is not a valid glob pattern: {reason}")]
    BadGlob { path: String, reason: String },

    #[error("cannot read {}: {reason}", file.display())]
    Unreadable { file: PathBuf, reason: String },

    #[error("{} and {} disagree on column `{column}` ({first} vs {second}); every file of a source must have the same schema", first_file.display(), second_file.display())]
    InconsistentSchema { first_file: PathBuf, second_file: PathBuf, column: String, first: String, second: String },
}

/// The files behind a source, all of one format, in a stable order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFiles {
    pub format: FileFormat,
    pub files: Vec<PathBuf>,
}

fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

fn is_data_file(path: &Path, format: Option<FileFormat>) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    if name.starts_with('.') || name.starts_with('_') || !path.is_file() {
        return false;
    }
    match format {
        Some(_) => FileFormat::from_extension(&name).is_some() || !name.contains('.'),
        None => FileFormat::from_extension(&name).is_some(),
    }
}

/// Every file under `dir`, recursively (hive-style partition folders are
/// ordinary sub-folders here), skipping hidden and `_`-prefixed entries
/// (Spark's `_SUCCESS`, temp files of writers in progress).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Resolve `source.path` (relative to `root`) to its files and format.
pub fn list_source_files(root: &Path, source: &Source) -> Result<SourceFiles, SourceError> {
    let resolved = root.join(&source.path);
    let mut candidates = Vec::new();
    if is_glob(&source.path) {
        let pattern = resolved.to_string_lossy().into_owned();
        let paths = glob::glob(&pattern).map_err(|e| SourceError::BadGlob { path: source.path.clone(), reason: e.to_string() })?;
        candidates.extend(paths.filter_map(Result::ok).filter(|p| p.is_file()));
    } else if resolved.is_dir() {
        walk(&resolved, &mut candidates).map_err(|e| SourceError::Unreadable { file: resolved.clone(), reason: e.to_string() })?;
    } else if resolved.is_file() {
        candidates.push(resolved.clone());
    } else {
        return Err(SourceError::NotFound { path: source.path.clone(), resolved });
    }
    let single_file = candidates.len() == 1 && resolved.is_file();
    let mut files: Vec<PathBuf> = candidates.into_iter().filter(|p| single_file || is_data_file(p, source.format)).collect();
    files.sort();
    if files.is_empty() {
        return Err(SourceError::NoFiles { path: source.path.clone() });
    }
    let format = match source.format {
        Some(format) => format,
        None => infer_format(&source.path, &files)?,
    };
    Ok(SourceFiles { format, files })
}

fn infer_format(path: &str, files: &[PathBuf]) -> Result<FileFormat, SourceError> {
    let mut formats: Vec<FileFormat> = Vec::new();
    for file in files {
        match FileFormat::from_extension(&file.to_string_lossy()) {
            Some(format) if !formats.contains(&format) => formats.push(format),
            Some(_) => {}
            None => return Err(SourceError::UnknownFormat { path: path.to_string() }),
        }
    }
    match formats.as_slice() {
        [one] => Ok(*one),
        _ => Err(SourceError::MixedFormats {
            path: path.to_string(),
            found: formats.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// The schema shared by every file of a source, read from metadata only.
pub fn read_source_schema(files: &SourceFiles) -> Result<SchemaRef, SourceError> {
    let mut merged: Option<(PathBuf, SchemaRef)> = None;
    for file in &files.files {
        let schema = match files.format {
            FileFormat::Parquet => parquet_schema(file)?,
            FileFormat::Csv => csv_schema(file)?,
        };
        match &merged {
            None => merged = Some((file.clone(), schema)),
            Some((first_file, first)) => check_consistent(first_file, first, file, &schema)?,
        }
    }
    merged.map(|(_, s)| s).ok_or_else(|| SourceError::NoFiles { path: String::new() })
}

fn check_consistent(first_file: &Path, first: &Schema, file: &Path, schema: &Schema) -> Result<(), SourceError> {
    for field in schema.fields() {
        if let Ok(existing) = first.field_with_name(field.name())
            && almanac_core::DType::from_arrow(existing.data_type()) != almanac_core::DType::from_arrow(field.data_type())
        {
            return Err(SourceError::InconsistentSchema {
                first_file: first_file.to_path_buf(),
                second_file: file.to_path_buf(),
                column: field.name().clone(),
                first: existing.data_type().to_string(),
                second: field.data_type().to_string(),
            });
        }
    }
    Ok(())
}

fn unreadable(file: &Path) -> impl Fn(String) -> SourceError + '_ {
    move |reason| SourceError::Unreadable { file: file.to_path_buf(), reason }
}

fn parquet_schema(file: &Path) -> Result<SchemaRef, SourceError> {
    let handle = File::open(file).map_err(|e| unreadable(file)(e.to_string()))?;
    let reader = SerializedFileReader::new(handle).map_err(|e| unreadable(file)(format!("not a valid Parquet file ({e})")))?;
    let metadata = reader.metadata().file_metadata();
    let schema = parquet_to_arrow_schema(metadata.schema_descr(), metadata.key_value_metadata())
        .map_err(|e| unreadable(file)(e.to_string()))?;
    Ok(Arc::new(schema))
}

fn csv_schema(file: &Path) -> Result<SchemaRef, SourceError> {
    let handle = File::open(file).map_err(|e| unreadable(file)(e.to_string()))?;
    let format = arrow::csv::reader::Format::default().with_header(true);
    let (schema, _) = format
        .infer_schema(handle, Some(CSV_SAMPLE_RECORDS))
        .map_err(|e| unreadable(file)(format!("not a valid CSV file ({e})")))?;
    Ok(Arc::new(schema))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field};

    fn source(path: &str, format: Option<FileFormat>) -> Source {
        Source {
            name: "s".into(),
            path: path.into(),
            format,
            timestamp_field: "ts".into(),
            created_timestamp_column: None,
            field_mapping: Default::default(),
            table: None, query: None, batch_source: None, stream: None,
            governance: Default::default(),
        }
    }

    fn write_parquet(path: &Path, column: &str, data_type: DataType) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let schema = Arc::new(Schema::new(vec![Field::new(column, data_type.clone(), true)]));
        let array = arrow::compute::cast(&Int64Array::from(vec![1, 2]), &data_type).expect("cast");
        let batch = RecordBatch::try_new(schema.clone(), vec![array]).expect("batch");
        let mut writer = parquet::arrow::ArrowWriter::try_new(File::create(path).expect("create"), schema, None).expect("writer");
        writer.write(&batch).expect("write");
        writer.close().expect("close");
    }

    #[test]
    fn resolves_files_folders_globs_and_partitions() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_parquet(&dir.path().join("one.parquet"), "x", DataType::Int64);
        write_parquet(&dir.path().join("folder/day=1/a.parquet"), "x", DataType::Int64);
        write_parquet(&dir.path().join("folder/day=2/b.parquet"), "x", DataType::Int64);
        std::fs::write(dir.path().join("folder/_SUCCESS"), b"").expect("marker");
        let one = list_source_files(dir.path(), &source("one.parquet", None)).expect("file");
        assert_eq!(one.files.len(), 1);
        let folder = list_source_files(dir.path(), &source("folder", None)).expect("folder");
        assert_eq!(folder.files.len(), 2);
        assert_eq!(folder.format, FileFormat::Parquet);
        let globbed = list_source_files(dir.path(), &source("folder/*/b.parquet", None)).expect("glob");
        assert_eq!(globbed.files.len(), 1);
        let schema = read_source_schema(&folder).expect("schema");
        assert_eq!(schema.field(0).data_type(), &DataType::Int64);
    }

    #[test]
    fn explains_missing_mixed_and_inconsistent_sources() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = list_source_files(dir.path(), &source("nope.parquet", None)).expect_err("missing");
        assert!(missing.to_string().contains("does not exist"), "{missing}");
        write_parquet(&dir.path().join("mixed/a.parquet"), "x", DataType::Int64);
        std::fs::write(dir.path().join("mixed/b.csv"), "x\n1\n").expect("csv");
        let mixed = list_source_files(dir.path(), &source("mixed", None)).expect_err("mixed");
        assert!(mixed.to_string().contains("set `format: parquet`"), "{mixed}");
        assert_eq!(list_source_files(dir.path(), &source("mixed", Some(FileFormat::Csv))).expect("forced").format, FileFormat::Csv);
        write_parquet(&dir.path().join("drift/a.parquet"), "x", DataType::Int64);
        write_parquet(&dir.path().join("drift/b.parquet"), "x", DataType::Utf8);
        let files = list_source_files(dir.path(), &source("drift", None)).expect("drift");
        let error = read_source_schema(&files).expect_err("inconsistent");
        assert!(error.to_string().contains("disagree on column `x`"), "{error}");
    }

    #[test]
    fn corrupt_files_name_their_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("bad.parquet"), b"not parquet at all").expect("write");
        let files = list_source_files(dir.path(), &source("bad.parquet", None)).expect("listed");
        let error = read_source_schema(&files).expect_err("corrupt");
        assert!(error.to_string().contains("bad.parquet"), "{error}");
    }

    #[test]
    fn csv_schema_is_inferred_from_a_sample() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("t.csv"), "id,ts,v\n1,2026-01-01T00:00:00Z,1.5\n2,2026-01-02T00:00:00Z,\n").expect("csv");
        let files = list_source_files(dir.path(), &source("t.csv", None)).expect("csv");
        let schema = read_source_schema(&files).expect("schema");
        assert_eq!(schema.field_with_name("id").expect("id").data_type(), &DataType::Int64);
        assert_eq!(schema.field_with_name("v").expect("v").data_type(), &DataType::Float64);
    }
}
