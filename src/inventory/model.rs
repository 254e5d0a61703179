//! Item kinds, items (serialised assets or counted stock) and assignments to employees.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::admin::def::take;
use crate::admin::{AdminRecord, Field, FormCtx, Kind, OnDelete, ResourceDef, Values};
use crate::error::FieldErrors;
use crate::money::Money;
use crate::store::{Entity, IndexDef, Value};

pub const TRACKING: &[(&str, &str)] = &[("serialised", "Serialised (one row per asset)"), ("counted", "Counted stock")];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemKind {
    pub name: String,
    /// `serialised` or `counted`.
    pub tracking: String,
    /// Highlight the kind when fewer than this many are free.
    pub low_stock: Option<i64>,
}

crate::envelope_v1!(ItemKind, ItemKindRecord);

impl Entity for ItemKind {
    const TABLE: &'static str = "inventory.kinds";
    const INDEXES: &'static [IndexDef] = &[IndexDef { name: "name", field: "name", unique: true }];
    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("name", Value::text(self.name.clone())),
            ("tracking", Value::text(self.tracking.clone())),
            ("low_stock", self.low_stock.map(Value::Int).unwrap_or_default()),
        ]
    }
}

impl ItemKind {
    pub fn counted(&self) -> bool {
        self.tracking == "counted"
    }
}

impl AdminRecord for ItemKind {
    fn def() -> ResourceDef {
        ResourceDef {
            slug: "item-kinds",
            module: "Inventory",
            singular: "item kind",
            plural: "item kinds",
            fields: vec![
                Field::new("name", "Name", Kind::Text).required(),
                Field::new("tracking", "Tracking", Kind::Choice(TRACKING)).required(),
                Field::new("low_stock", "Low-stock threshold", Kind::Int)
                    .help("The inventory page highlights this kind when fewer are free."),
            ],
            list_display: vec!["name", "tracking", "low_stock"],
            search_fields: vec!["name"],
            filters: vec!["tracking"],
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
        let tracking = take::req_text(v, "tracking", &mut errs);
        let low_stock = take::int(v, "low_stock");
        if low_stock.is_some_and(|n| n < 0) {
            errs.add("low_stock", "Enter zero or more.");
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(ItemKind { name, tracking, low_stock })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub kind: u64,
    /// Make and model, e.g. "ThinkPad T14 Gen 5".
    pub name: String,
    pub serial: Option<String>,
    pub purchase_date: Option<NaiveDate>,
    pub cost: Option<Money>,
    pub warranty_end: Option<NaiveDate>,
    /// How many exist: 1 for a serialised asset, the stock for counted items.
    pub quantity: i64,
    pub notes: Option<String>,
    /// Current holder of a serialised asset (set by assigning, not by editing).
    pub assignee: Option<u64>,
    /// How many of a counted item are handed out.
    pub assigned_qty: i64,
}

crate::envelope_v1!(Item, ItemRecord);

impl Entity for Item {
    const TABLE: &'static str = "inventory.items";
    const INDEXES: &'static [IndexDef] = &[
        IndexDef { name: "serial", field: "serial", unique: true },
        IndexDef { name: "kind", field: "kind", unique: false },
        IndexDef { name: "assignee", field: "assignee", unique: false },
    ];
    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("name", Value::text(self.name.clone())),
            ("serial", Value::opt_text(&self.serial)),
            ("kind", Value::Ref(self.kind)),
            ("purchase_date", Value::opt_date(self.purchase_date)),
            ("cost", self.cost.map(Value::Money).unwrap_or_default()),
            ("warranty_end", Value::opt_date(self.warranty_end)),
            ("quantity", Value::Int(self.quantity)),
            ("notes", Value::opt_text(&self.notes)),
            ("assignee", Value::opt_ref(self.assignee)),
            ("assigned_qty", Value::Int(self.assigned_qty)),
            ("assigned", Value::Bool(self.assignee.is_some() || self.assigned_qty > 0)),
        ]
    }
}

impl Item {
    pub fn free(&self) -> i64 {
        if self.assignee.is_some() { 0 } else { self.quantity - self.assigned_qty }
    }
}

impl AdminRecord for Item {
    fn def() -> ResourceDef {
        ResourceDef {
            slug: "items",
            module: "Inventory",
            singular: "item",
            plural: "items",
            fields: vec![
                Field::new("name", "Name", Kind::Text).required().help("Make and model, e.g. “ThinkPad T14 Gen 5”."),
                Field::new("serial", "Serial number", Kind::Text),
                Field::new("kind", "Kind", Kind::Ref { target: "item-kinds", on_delete: OnDelete::Protect }).required(),
                Field::new("purchase_date", "Purchased", Kind::Date),
                Field::new("cost", "Cost", Kind::Money),
                Field::new("warranty_end", "Warranty ends", Kind::Date),
                Field::new("quantity", "Quantity", Kind::Int)
                    .help("1 for a serialised asset; the stock for counted items."),
                Field::new("notes", "Notes", Kind::LongText),
                Field::new("assignee", "Assigned to", Kind::Ref { target: "employees", on_delete: OnDelete::Protect })
                    .readonly(),
                Field::new("assigned_qty", "Handed out", Kind::Int).readonly(),
                Field::new("assigned", "Assigned", Kind::Bool).readonly(),
            ],
            list_display: vec!["name", "serial", "kind", "assignee", "purchase_date", "warranty_end", "quantity"],
            search_fields: vec!["name", "serial", "notes"],
            filters: vec!["kind", "assigned", "assignee", "purchase_date", "warranty_end"],
            ordering: "name",
            per_page: 100,
            importable: true,
        }
    }
    fn label(&self) -> String {
        match &self.serial {
            Some(s) => format!("{} ({s})", self.name),
            None => self.name.clone(),
        }
    }
    fn from_values(v: &Values, old: Option<&Self>, ctx: &FormCtx<'_, '_, '_>) -> Result<Self, FieldErrors> {
        let mut errs = FieldErrors::new();
        let name = take::req_text(v, "name", &mut errs);
        let kind_id = take::reference(v, "kind");
        let kind = match kind_id {
            Some(k) => ctx.tx.get::<ItemKind>(k).ok().flatten(),
            None => None,
        };
        if kind.is_none() {
            errs.add("kind", "Choose a kind.");
        }
        let counted = kind.as_ref().is_some_and(ItemKind::counted);
        let serial = take::text(v, "serial");
        let quantity = take::int(v, "quantity").unwrap_or(1);
        if counted {
            if quantity < 0 {
                errs.add("quantity", "Enter zero or more.");
            }
            let out = old.map(|o| o.assigned_qty).unwrap_or(0);
            if quantity < out {
                errs.add("quantity", format!("{out} are handed out; the quantity cannot be lower."));
            }
        } else {
            if quantity != 1 {
                errs.add("quantity", "A serialised asset has a quantity of 1; use a counted kind for stock.");
            }
            if serial.is_none() {
                errs.add("serial", "A serialised asset needs its serial number.");
            }
        }
        if let (Some(p), Some(w)) = (take::date(v, "purchase_date"), take::date(v, "warranty_end"))
            && w < p
        {
            errs.add("warranty_end", "The warranty cannot end before the purchase date.");
        }
        let cost = take::money(v, "cost");
        if cost.is_some_and(|c| c.minor < 0) {
            errs.add("cost", "The cost cannot be negative.");
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Item {
            kind: kind_id.unwrap_or_default(),
            name,
            serial,
            purchase_date: take::date(v, "purchase_date"),
            cost,
            warranty_end: take::date(v, "warranty_end"),
            quantity,
            notes: take::text(v, "notes"),
            assignee: old.and_then(|o| o.assignee),
            assigned_qty: old.map(|o| o.assigned_qty).unwrap_or(0),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub item: u64,
    pub employee: u64,
    pub quantity: i64,
    pub assigned_on: NaiveDate,
    pub returned_on: Option<NaiveDate>,
    pub note: Option<String>,
}

crate::envelope_v1!(Assignment, AssignmentRecord);

impl Entity for Assignment {
    const TABLE: &'static str = "inventory.assignments";
    const INDEXES: &'static [IndexDef] = &[
        IndexDef { name: "item", field: "item", unique: false },
        IndexDef { name: "employee", field: "employee", unique: false },
    ];
    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("item", Value::Ref(self.item)),
            ("employee", Value::Ref(self.employee)),
            ("quantity", Value::Int(self.quantity)),
            ("assigned_on", Value::Date(self.assigned_on)),
            ("returned_on", Value::opt_date(self.returned_on)),
            ("note", Value::opt_text(&self.note)),
        ]
    }
}

impl AdminRecord for Assignment {
    fn def() -> ResourceDef {
        ResourceDef {
            slug: "assignments",
            module: "Inventory",
            singular: "assignment",
            plural: "assignments",
            fields: vec![
                Field::new("item", "Item", Kind::Ref { target: "items", on_delete: OnDelete::Cascade }).readonly(),
                Field::new("employee", "Employee", Kind::Ref { target: "employees", on_delete: OnDelete::Protect })
                    .readonly(),
                Field::new("quantity", "Quantity", Kind::Int).readonly(),
                Field::new("assigned_on", "Assigned on", Kind::Date).readonly(),
                Field::new("returned_on", "Returned on", Kind::Date).readonly(),
                Field::new("note", "Note", Kind::Text),
            ],
            list_display: vec!["item", "employee", "quantity", "assigned_on", "returned_on"],
            search_fields: vec!["note"],
            filters: vec!["employee", "item", "assigned_on", "returned_on"],
            ordering: "-assigned_on",
            per_page: 100,
            importable: false,
        }
    }
    fn label(&self) -> String {
        format!("Assignment of item #{} on {}", self.item, self.assigned_on)
    }
    fn from_values(v: &Values, old: Option<&Self>, _ctx: &FormCtx<'_, '_, '_>) -> Result<Self, FieldErrors> {
        // Assignments are made with the Assign and Return actions; only the note is editable.
        let Some(old) = old else {
            return Err(FieldErrors::single("", "Assign items from the item's page."));
        };
        Ok(Assignment { note: take::text(v, "note"), ..old.clone() })
    }
}
