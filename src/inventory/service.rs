//! Assigning and returning items. Each runs inside one write transaction.

use chrono::NaiveDate;

use super::model::{Assignment, Item, ItemKind};
use crate::error::{AppError, FieldErrors};
use crate::people::Employee;
use crate::store::{AuditAction, Tx};

/// Hands `quantity` of `item_id` to `employee_id`. Returns the new assignment's id.
pub fn assign(
    tx: &mut Tx<'_, '_>,
    item_id: u64,
    employee_id: u64,
    quantity: i64,
    on: NaiveDate,
    note: Option<String>,
) -> Result<u64, AppError> {
    let mut item = tx.must_get::<Item>(item_id)?;
    let kind = tx.must_get::<ItemKind>(item.kind)?;
    let employee = tx
        .get::<Employee>(employee_id)?
        .ok_or_else(|| AppError::Validation(FieldErrors::single("employee", "Choose an existing employee.")))?;
    if !employee.active {
        return Err(AppError::Validation(FieldErrors::single(
            "employee",
            format!("{} has left; items cannot be assigned to them.", employee.name),
        )));
    }
    let quantity = if kind.counted() { quantity } else { 1 };
    if quantity <= 0 {
        return Err(AppError::Validation(FieldErrors::single("quantity", "Enter how many to hand out.")));
    }
    if kind.counted() {
        let free = item.quantity - item.assigned_qty;
        if quantity > free {
            return Err(AppError::Validation(FieldErrors::single(
                "quantity",
                format!("Only {free} free; cannot hand out {quantity}."),
            )));
        }
        item.assigned_qty += quantity;
    } else {
        if let Some(holder) = item.assignee {
            let who = tx.get::<Employee>(holder)?.map(|e| e.name).unwrap_or_else(|| format!("#{holder}"));
            return Err(AppError::Validation(FieldErrors::single(
                "employee",
                format!("This item is with {who}; return it first."),
            )));
        }
        item.assignee = Some(employee_id);
    }
    let a = Assignment {
        item: item_id,
        employee: employee_id,
        quantity,
        assigned_on: on,
        returned_on: None,
        note: note.clone(),
    };
    let aid = tx.insert(&a)?;
    let what =
        if kind.counted() { format!("{quantity} to {}", employee.name) } else { format!("to {}", employee.name) };
    tx.update_as(item_id, &item, AuditAction::Other("assigned".into()), Some(format!("Assigned {what}")))?;
    Ok(aid)
}

/// Records the return of an open assignment.
pub fn return_assignment(tx: &mut Tx<'_, '_>, assignment_id: u64, on: NaiveDate) -> Result<u64, AppError> {
    let mut a = tx.must_get::<Assignment>(assignment_id)?;
    if a.returned_on.is_some() {
        return Err(AppError::Conflict("This assignment was already returned.".into()));
    }
    let mut item = tx.must_get::<Item>(a.item)?;
    let who = tx.get::<Employee>(a.employee)?.map(|e| e.name).unwrap_or_default();
    a.returned_on = Some(on.max(a.assigned_on));
    tx.update(assignment_id, &a)?;
    if item.assignee == Some(a.employee) {
        item.assignee = None;
    } else {
        item.assigned_qty = (item.assigned_qty - a.quantity).max(0);
    }
    tx.update_as(a.item, &item, AuditAction::Other("returned".into()), Some(format!("Returned by {who}")))?;
    Ok(a.item)
}
