//! CSV export of a filtered list, and parsing of CSV files for import.

use std::sync::Arc;

use poem::web::{Data, Path, Query};
use poem::{Response, handler};

use super::Registry;
use super::def::{Kind, ResourceDef, Values};
use super::form::parse_value;
use super::handlers::resource;
use crate::App;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::money::Currency;
use crate::store::Value;
use crate::web::Ctx;

/// Columns of an export: `id`, then every field that is not write-only.
pub fn export_columns(def: &ResourceDef) -> Vec<usize> {
    def.fields.iter().enumerate().filter(|(_, f)| !f.is_write_only()).map(|(i, _)| i).collect()
}

fn cell(v: &Value) -> String {
    let s = v.plain();
    // Cells starting with these are formulas to spreadsheet programs.
    if s.starts_with(['=', '+', '-', '@']) && !matches!(v, Value::Int(_) | Value::Money(_)) {
        format!("'{s}")
    } else {
        s
    }
}

#[handler]
pub async fn export(
    app: Data<&App>,
    _ctx: Data<&Arc<Ctx>>,
    Path(slug): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> AppResult<Response> {
    let res = resource(&app, &slug)?;
    let def = res.def();
    let (_, page) = super::handlers::run_query(&app, res.as_ref(), &pairs, false)?;
    let cols = export_columns(def);
    let mut w = csv::Writer::from_writer(Vec::with_capacity(page.rows.len() * 128));
    let mut header = vec!["id".to_string()];
    header.extend(cols.iter().map(|i| def.fields[*i].name.to_string()));
    w.write_record(&header).map_err(AppError::internal)?;
    for row in &page.rows {
        let mut rec = vec![row.id.to_string()];
        rec.extend(cols.iter().map(|i| cell(&row.values[*i])));
        w.write_record(&rec).map_err(AppError::internal)?;
    }
    let bytes = w.into_inner().map_err(AppError::internal)?;
    let resp = Response::builder().content_type("text/csv; charset=utf-8").body(bytes);
    Ok(super::handlers::attachment(resp, &format!("{slug}.csv")))
}

/// One data row of an import file, parsed.
#[derive(Debug, Clone)]
pub struct ImportRow {
    /// 1-based line number in the file (the header is line 1).
    pub line: usize,
    pub id: Option<u64>,
    pub values: Values,
    pub errors: FieldErrors,
}

/// Reads a CSV file into rows. Errors about the file as a whole (no header, unknown
/// columns) come back as `Err`; per-cell problems are kept on their row.
pub fn parse_csv(
    reg: &Registry,
    def: &ResourceDef,
    bytes: &[u8],
    currency: Currency,
) -> Result<Vec<ImportRow>, String> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| "The file is not UTF-8 text. Save it as “CSV UTF-8”.".to_string())?;
    let text = text.trim_start_matches('\u{feff}');
    let mut rdr = csv::ReaderBuilder::new().flexible(false).from_reader(text.as_bytes());
    let headers = rdr.headers().map_err(|e| format!("Cannot read the header row: {e}"))?.clone();
    if headers.is_empty() {
        return Err("The file has no header row.".into());
    }
    let mut id_col = None;
    let mut cols: Vec<(usize, usize)> = Vec::new();
    let mut unknown = Vec::new();
    for (c, h) in headers.iter().enumerate() {
        let h = h.trim();
        if h.eq_ignore_ascii_case("id") {
            id_col = Some(c);
            continue;
        }
        match def.fields.iter().position(|f| f.name.eq_ignore_ascii_case(h) || f.label.eq_ignore_ascii_case(h)) {
            Some(i) if def.fields[i].readonly || matches!(def.fields[i].kind, Kind::Time) => {}
            Some(i) => cols.push((c, i)),
            None => unknown.push(h.to_string()),
        }
    }
    if !unknown.is_empty() {
        return Err(format!(
            "Unknown column(s): {}. Expected some of: id, {}.",
            unknown.join(", "),
            def.fields.iter().filter(|f| !f.readonly).map(|f| f.name).collect::<Vec<_>>().join(", ")
        ));
    }
    let mut rows = Vec::new();
    for (n, rec) in rdr.records().enumerate() {
        let line = n + 2;
        let rec = rec.map_err(|e| format!("Line {line}: {e}"))?;
        let mut errors = FieldErrors::new();
        let id = match id_col.map(|c| rec.get(c).unwrap_or("").trim()) {
            None | Some("") => None,
            Some(s) => match s.parse::<u64>() {
                Ok(v) => Some(v),
                Err(_) => {
                    errors.add("id", format!("{s:?} is not a record id."));
                    None
                }
            },
        };
        let mut values = Values::new();
        for (c, i) in &cols {
            let f = &def.fields[*i];
            let raw = rec.get(*c).unwrap_or("");
            let raw = raw.strip_prefix('\'').filter(|r| r.starts_with(['=', '+', '-', '@'])).unwrap_or(raw);
            let parsed = match f.kind {
                Kind::Ref { .. } if !raw.trim().is_empty() && raw.trim().parse::<u64>().is_err() => {
                    parse_value(reg, f, &[], Some(raw), currency)
                }
                _ => parse_value(reg, f, &[raw], None, currency),
            };
            match parsed {
                Ok(v) => {
                    values.insert(f.name, v);
                }
                Err(m) => errors.add(f.name, m),
            }
        }
        rows.push(ImportRow { line, id, values, errors });
    }
    if rows.is_empty() {
        return Err("The file has a header row but no data rows.".into());
    }
    Ok(rows)
}
