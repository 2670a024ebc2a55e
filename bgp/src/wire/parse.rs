//! The seam between nom and our errors: nom parsers work on byte slices; every failure is
//! turned into a `DecodeError` whose offset is measured from the start of the part being
//! decoded. No `nom::Err` leaves this module's callers.

use nom::error::{Error as NomError, ErrorKind};

use super::DecodeError;

pub(crate) type NomResult<'a, T> = nom::IResult<&'a [u8], T, NomError<&'a [u8]>>;

/// Byte offset of `rest` inside `orig` (both slices of the same buffer).
pub(crate) fn offset(orig: &[u8], rest: &[u8]) -> usize {
    (rest.as_ptr() as usize).saturating_sub(orig.as_ptr() as usize)
}

/// Run a nom parser and turn its failure into `DecodeError { code, subcode }` at the offset
/// where nom stopped.
pub(crate) fn run<'a, T>(
    orig: &'a [u8],
    input: &'a [u8],
    parser: impl FnOnce(&'a [u8]) -> NomResult<'a, T>,
    code: u8,
    subcode: u8,
    what: &str,
) -> Result<(&'a [u8], T), DecodeError> {
    parser(input).map_err(|e| {
        let at = match &e {
            nom::Err::Error(err) | nom::Err::Failure(err) => offset(orig, err.input),
            nom::Err::Incomplete(_) => offset(orig, input),
        };
        let kind = match &e {
            nom::Err::Error(err) | nom::Err::Failure(err) if err.code == ErrorKind::Eof => {
                "truncated"
            }
            _ => "malformed",
        };
        DecodeError::new(code, subcode, at, format!("{what}: {kind}"))
    })
}
