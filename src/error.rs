//! One error type for the whole application, mapped to status codes and pages.

use std::collections::BTreeMap;

use poem::http::StatusCode;

/// Field name -> messages, for forms. `""` holds errors about the form as a whole.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldErrors(pub BTreeMap<String, Vec<String>>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn add(&mut self, field: impl Into<String>, msg: impl Into<String>) {
        self.0.entry(field.into()).or_default().push(msg.into());
    }
    pub fn single(field: impl Into<String>, msg: impl Into<String>) -> Self {
        let mut e = Self::new();
        e.add(field, msg);
        e
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn get(&self, field: &str) -> &[String] {
        self.0.get(field).map(Vec::as_slice).unwrap_or(&[])
    }
    pub fn merge(&mut self, other: FieldErrors) {
        for (k, v) in other.0 {
            self.0.entry(k).or_default().extend(v);
        }
    }
    /// `Ok(())` when empty, else `Err(AppError::Validation)`.
    pub fn into_result(self) -> Result<(), AppError> {
        if self.is_empty() { Ok(()) } else { Err(AppError::Validation(self)) }
    }
}

impl std::fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (field, msgs) in &self.0 {
            for m in msgs {
                if !first {
                    f.write_str("; ")?;
                }
                first = false;
                if field.is_empty() {
                    write!(f, "{m}")?;
                } else {
                    write!(f, "{field}: {m}")?;
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Not signed in: browsers are sent to the login page with `next` set.
    #[error("sign-in required")]
    Unauthenticated { next: String },
    #[error("you do not have permission to do this")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Validation(FieldErrors),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Unauthenticated { .. } => StatusCode::SEE_OTHER,
            AppError::Forbidden => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Validation(_) | AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn internal(msg: impl std::fmt::Display) -> Self {
        AppError::Internal(anyhow::anyhow!("{msg}"))
    }
}

impl poem::error::ResponseError for AppError {
    fn status(&self) -> StatusCode {
        AppError::status(self)
    }
}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Unique { field, .. } => {
                AppError::Validation(FieldErrors::single(field, "This value is already used by another record."))
            }
            crate::store::StoreError::NotFound => AppError::NotFound,
            crate::store::StoreError::App(e) => *e,
            other => AppError::Internal(anyhow::Error::new(other)),
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;
