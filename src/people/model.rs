use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::admin::def::take;
use crate::admin::{AdminRecord, Field, FormCtx, Kind, ResourceDef, Values};
use crate::error::FieldErrors;
use crate::store::{Entity, IndexDef, Value};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Employee {
    pub name: String,
    pub work_email: String,
    pub title: String,
    pub team: Option<String>,
    pub start_date: NaiveDate,
    /// Last working day, for past employees.
    pub end_date: Option<NaiveDate>,
    pub active: bool,
}

crate::envelope_v1!(Employee, EmployeeRecord);

impl Entity for Employee {
    const TABLE: &'static str = "people.employees";
    const INDEXES: &'static [IndexDef] = &[IndexDef { name: "work_email", field: "work_email", unique: true }];
    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("name", Value::text(self.name.clone())),
            ("work_email", Value::text(self.work_email.clone())),
            ("title", Value::text(self.title.clone())),
            ("team", Value::opt_text(&self.team)),
            ("start_date", Value::Date(self.start_date)),
            ("end_date", Value::opt_date(self.end_date)),
            ("active", Value::Bool(self.active)),
        ]
    }
}

impl AdminRecord for Employee {
    fn def() -> ResourceDef {
        ResourceDef {
            slug: "employees",
            module: "People",
            singular: "employee",
            plural: "employees",
            fields: vec![
                Field::new("name", "Name", Kind::Text).required(),
                Field::new("work_email", "Work email", Kind::Email).required(),
                Field::new("title", "Title", Kind::Text).required(),
                Field::new("team", "Team", Kind::Text),
                Field::new("start_date", "Start date", Kind::Date).required(),
                Field::new("end_date", "End date", Kind::Date).help("Last working day, for people who have left."),
                Field::new("active", "Active", Kind::Bool).help("Clear this when someone leaves; their history stays."),
            ],
            list_display: vec!["name", "work_email", "title", "team", "start_date", "active"],
            search_fields: vec!["name", "work_email", "title", "team"],
            filters: vec!["active", "start_date"],
            ordering: "name",
            per_page: 100,
            importable: true,
        }
    }

    fn label(&self) -> String {
        self.name.clone()
    }

    fn from_values(v: &Values, _old: Option<&Self>, _ctx: &FormCtx<'_, '_, '_>) -> Result<Self, FieldErrors> {
        let mut errs = FieldErrors::new();
        let name = take::req_text(v, "name", &mut errs);
        let work_email = take::req_text(v, "work_email", &mut errs).to_lowercase();
        let title = take::req_text(v, "title", &mut errs);
        let start_date = take::date(v, "start_date");
        if start_date.is_none() {
            errs.add("start_date", "This field is required.");
        }
        let end_date = take::date(v, "end_date");
        if let (Some(s), Some(e)) = (start_date, end_date)
            && e < s
        {
            errs.add("end_date", "The end date cannot be before the start date.");
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Employee {
            name,
            work_email,
            title,
            team: take::text(v, "team"),
            start_date: start_date.unwrap_or_default(),
            end_date,
            active: take::boolean(v, "active"),
        })
    }
}
