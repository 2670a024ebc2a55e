//! RFC 7606 classification of UPDATE errors: what a session does about each one. The decoder
//! returns the errors a session survives inside the `Update` (with the routes it could still
//! recover); the ones that end the session come back as `DecodeError` instead.

use super::error::code;
use super::{Family, Notification};

/// The error-handling approaches of RFC 7606 §2, from the mildest to the most severe.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// RFC 7606 §2 "attribute discard": the attribute was dropped; the routes stand.
    AttributeDiscard,
    /// RFC 7606 §2 "treat-as-withdraw": every route the UPDATE announces (NLRI field and
    /// MP_REACH_NLRI) is to be handled as if it had been listed as withdrawn.
    TreatAsWithdraw,
    /// RFC 7606 §2 / RFC 4760 §7 "AFI/SAFI disable": drop every route of this family learnt on
    /// the session and ignore the family until the session ends — or, if the session prefers,
    /// reset it with the NOTIFICATION of the error (`AttrError::notification`).
    AfiSafiDisable(Family),
    /// RFC 7606 §2 "session reset". Never found in `Update::errors`: the decoder returns such
    /// errors as `Err(DecodeError)`.
    SessionReset,
}

/// One error found while decoding an UPDATE that the session survives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrError {
    /// The attribute type code, or 0 when no attribute header could be read (RFC 7606 §4) or
    /// the error is not in an attribute.
    pub type_code: u8,
    pub action: Action,
    /// The RFC 4271 §6.3 UPDATE Message Error subcode that names the error (what a session
    /// would send if it chose, or was configured, to reset instead).
    pub subcode: u8,
    /// What was wrong, for logs.
    pub reason: String,
    /// Byte offset from the start of the UPDATE body (the byte after the 19-byte header).
    pub offset: usize,
    /// The NOTIFICATION data RFC 4271 §6.3 prescribes for this error (usually the whole
    /// erroneous attribute: flags, type, length and value).
    pub data: Vec<u8>,
}

impl AttrError {
    /// The NOTIFICATION to send if the session resets instead of applying `action`.
    pub fn notification(&self) -> Notification {
        Notification::new(code::UPDATE_MESSAGE, self.subcode, self.data.clone())
    }
}

/// What the session must do with a decoded UPDATE as a whole: the most severe of its errors'
/// actions (RFC 7606 §3: when several errors are found, the most severe approach applies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Treatment {
    /// No error: install and withdraw as the UPDATE says.
    Normal,
    /// Some attributes were dropped (see `Update::errors`); otherwise as `Normal`.
    AttributeDiscard,
    /// Withdrawals stand; every announced route is to be treated as withdrawn.
    TreatAsWithdraw,
    /// Disable these families (RFC 4760 §7). The routes of other families in the same UPDATE
    /// share the broken attribute list and are to be treated as withdrawn.
    AfiSafiDisable(Vec<Family>),
}

/// The summary of a list of errors.
pub fn treatment(errors: &[AttrError]) -> Treatment {
    let mut disable: Vec<Family> = Vec::new();
    let mut worst = None::<&Action>;
    for e in errors {
        if let Action::AfiSafiDisable(f) = &e.action {
            if !disable.contains(f) {
                disable.push(*f);
            }
        }
        if worst.is_none_or(|w| e.action > *w) {
            worst = Some(&e.action);
        }
    }
    if !disable.is_empty() {
        return Treatment::AfiSafiDisable(disable);
    }
    match worst {
        None => Treatment::Normal,
        Some(Action::AttributeDiscard) => Treatment::AttributeDiscard,
        // SessionReset is never in the list; if a caller put it there, withdrawing is the
        // safe reading short of a reset.
        Some(_) => Treatment::TreatAsWithdraw,
    }
}
