//! Opening a FITS file from memory. Files are read (and gunzipped) in Rust and
//! handed to cfitsio as a buffer: cfitsio decompresses `.gz` files while holding
//! its global lock, which serialises every reader thread; this way only the
//! cheap header and table parsing runs inside cfitsio.

use std::ffi::{c_void, CString};
use std::io::Read;
use std::path::Path;

use fitsio::{FileOpenMode, FitsFile};

/// gzip files start with these two bytes, whatever their name.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads `path` into memory, gunzipping when it is gzip data.
pub fn read_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    let raw = std::fs::read(path)?;
    if raw.starts_with(&GZIP_MAGIC) {
        // LAMOST spectra inflate to about twice their compressed size.
        let mut out = Vec::with_capacity(raw.len() * 3);
        flate2::read::MultiGzDecoder::new(raw.as_slice()).read_to_end(&mut out)?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// A read-only cfitsio handle over an owned buffer.
///
/// cfitsio keeps the *addresses* of the buffer pointer and size it was given,
/// so both live in boxes whose addresses never move, and the handle is closed
/// (field order: `file` drops first) before they are freed.
pub struct MemoryFits {
    file: FitsFile,
    _ptr: Box<*mut c_void>,
    _size: Box<usize>,
    _data: Vec<u8>,
}

impl MemoryFits {
    pub fn open(mut data: Vec<u8>) -> Result<Self, fitsio::errors::Error> {
        let mut ptr = Box::new(data.as_mut_ptr() as *mut c_void);
        let mut size = Box::new(data.len());
        let name = CString::new("spectrum").expect("no NUL");
        let mut fptr = std::ptr::null_mut();
        let mut status = 0;
        // SAFETY: `ptr` and `size` are boxed, so the addresses cfitsio stores stay
        // valid until `file` is closed; READONLY mode never writes to or
        // reallocates the buffer (no realloc function is given).
        unsafe {
            fitsio::sys::ffomem(
                &mut fptr,
                name.as_ptr(),
                0, // READONLY
                &mut *ptr as *mut *mut c_void,
                &mut *size as *mut usize,
                0,
                None,
                &mut status,
            );
        }
        fitsio::errors::check_status(status)?;
        if fptr.is_null() {
            return Err(fitsio::errors::Error::NullPointer);
        }
        // SAFETY: `fptr` was just opened by cfitsio and is owned by nothing else.
        let file = unsafe { FitsFile::from_raw(fptr, FileOpenMode::READONLY)? };
        Ok(Self {
            file,
            _ptr: ptr,
            _size: size,
            _data: data,
        })
    }

    pub fn file(&mut self) -> &mut FitsFile {
        &mut self.file
    }
}

/// Checks that the current HDU's data, `data_bytes` long, lies inside the
/// `available` bytes of the buffer. cfitsio's memory driver zero-fills reads
/// past the end of a truncated buffer instead of failing, so this must be asked.
pub fn ensure_data_present(
    file: &mut FitsFile,
    available: usize,
    data_bytes: u64,
) -> Result<(), String> {
    let (mut head, mut data, mut end, mut status) = (0i64, 0i64, 0i64, 0);
    // SAFETY: `file` is an open cfitsio handle; ffghadll only reads its HDU table.
    unsafe {
        fitsio::sys::ffghadll(file.as_raw(), &mut head, &mut data, &mut end, &mut status);
    }
    if status != 0 {
        return Err(format!("cannot locate HDU data (cfitsio status {status})"));
    }
    let needed = data as u64 + data_bytes;
    if needed > available as u64 {
        return Err(format!(
            "truncated: the data needs {needed} bytes but the file has {available}"
        ));
    }
    Ok(())
}
