//! The one seam through which the map writer talks to the kernel: raw `bpf(2)` map commands on
//! fds of pinned maps (aya 0.14 has no batch operations and no way to create inner maps for a
//! hash-of-maps from user space, so these are done here).

use std::ffi::CString;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::maps::{as_bytes, slice_as_bytes, Pod};

const BPF_MAP_CREATE: u32 = 0;
const BPF_MAP_LOOKUP_ELEM: u32 = 1;
const BPF_MAP_UPDATE_ELEM: u32 = 2;
const BPF_MAP_DELETE_ELEM: u32 = 3;
const BPF_MAP_GET_NEXT_KEY: u32 = 4;
const BPF_OBJ_GET: u32 = 7;
const BPF_OBJ_GET_INFO_BY_FD: u32 = 15;
const BPF_MAP_UPDATE_BATCH: u32 = 26;
const BPF_MAP_DELETE_BATCH: u32 = 27;

pub const BPF_ANY: u64 = 0;
pub const BPF_MAP_TYPE_ARRAY: u32 = 2;
pub const BPF_F_INNER_MAP: u32 = 1 << 12;

/// `union bpf_attr`, as raw words; every command's fields are laid out by hand below.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Self {
        Attr([0; 128])
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn get_u32(&self, off: usize) -> u32 {
        let mut b = [0; 4];
        b.copy_from_slice(&self.0[off..off + 4]);
        u32::from_ne_bytes(b)
    }
}

fn sys_bpf(cmd: u32, attr: &mut Attr) -> io::Result<i64> {
    // SAFETY: attr is a valid, writable 128-byte bpf_attr whose pointers (set by the callers)
    // point at live buffers of the sizes the kernel will use.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr.0.as_mut_ptr(),
            attr.0.len(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn ptr<T: ?Sized>(p: &T) -> u64 {
    p as *const T as *const u8 as u64
}

/// What the kernel says a map is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapInfo {
    pub map_type: u32,
    pub id: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
}

pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    let mut a = Attr::new();
    a.u64(0, c.as_ptr() as u64);
    let fd = sys_bpf(BPF_OBJ_GET, &mut a)?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub fn map_info(fd: &OwnedFd) -> io::Result<MapInfo> {
    let mut info = [0u8; 96];
    let mut a = Attr::new();
    a.u32(0, fd.as_raw_fd() as u32)
        .u32(4, info.len() as u32)
        .u64(8, info.as_mut_ptr() as u64);
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a)?;
    let w =
        |off: usize| u32::from_ne_bytes([info[off], info[off + 1], info[off + 2], info[off + 3]]);
    Ok(MapInfo {
        map_type: w(0),
        id: w(4),
        key_size: w(8),
        value_size: w(12),
        max_entries: w(16),
        map_flags: w(20),
    })
}

/// Creates a map (used for Maglev inner tables).
pub fn map_create(
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
    name: &str,
) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32(0, map_type)
        .u32(4, key_size)
        .u32(8, value_size)
        .u32(12, max_entries)
        .u32(16, flags);
    let n = name.as_bytes();
    let len = n.len().min(15);
    a.0[28..28 + len].copy_from_slice(&n[..len]);
    let fd = sys_bpf(BPF_MAP_CREATE, &mut a)?;
    // SAFETY: as in obj_get.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A map fd with the key and value types its layout says; sizes are checked when it is opened.
#[derive(Debug)]
pub struct TypedMap<K, V> {
    fd: OwnedFd,
    name: String,
    info: MapInfo,
    _kv: PhantomData<(K, V)>,
}

/// Why a map could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("map {name}: {op}: {source}")]
    Syscall {
        name: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "map {name}: key/value sizes are {key}/{value}, layout v{} needs {want_key}/{want_value}",
        crate::maps::LAYOUT_VERSION
    )]
    Layout {
        name: String,
        key: u32,
        value: u32,
        want_key: usize,
        want_value: usize,
    },
    #[error("map {name}: batch {op} stopped after {done} of {total} entries: {source}")]
    Batch {
        name: String,
        op: &'static str,
        done: usize,
        total: usize,
        #[source]
        source: io::Error,
    },
}

impl<K: Pod, V: Pod> TypedMap<K, V> {
    /// Wraps an fd, checking key and value sizes against `K` and `V`.
    pub fn from_fd(fd: OwnedFd, name: &str) -> Result<Self, MapError> {
        let info = map_info(&fd).map_err(|source| MapError::Syscall {
            name: name.to_string(),
            op: "get info",
            source,
        })?;
        if info.key_size as usize != size_of::<K>() || info.value_size as usize != size_of::<V>() {
            return Err(MapError::Layout {
                name: name.to_string(),
                key: info.key_size,
                value: info.value_size,
                want_key: size_of::<K>(),
                want_value: size_of::<V>(),
            });
        }
        Ok(TypedMap {
            fd,
            name: name.to_string(),
            info,
            _kv: PhantomData,
        })
    }

    /// Opens a pinned map.
    pub fn open_pinned(path: &Path, name: &str) -> Result<Self, MapError> {
        let fd = obj_get(path).map_err(|source| MapError::Syscall {
            name: format!("{name} ({})", path.display()),
            op: "open pin",
            source,
        })?;
        Self::from_fd(fd, name)
    }

    pub fn info(&self) -> MapInfo {
        self.info
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    fn err(&self, op: &'static str, source: io::Error) -> MapError {
        MapError::Syscall {
            name: self.name.clone(),
            op,
            source,
        }
    }

    pub fn update(&self, key: &K, value: &V, flags: u64) -> Result<(), MapError> {
        let mut a = Attr::new();
        a.u32(0, self.fd.as_raw_fd() as u32)
            .u64(8, ptr(as_bytes(key)))
            .u64(16, ptr(as_bytes(value)))
            .u64(24, flags);
        sys_bpf(BPF_MAP_UPDATE_ELEM, &mut a).map_err(|e| self.err("update", e))?;
        Ok(())
    }

    pub fn get(&self, key: &K) -> Result<Option<V>, MapError> {
        let mut v = V::default();
        let mut a = Attr::new();
        a.u32(0, self.fd.as_raw_fd() as u32)
            .u64(8, ptr(as_bytes(key)))
            .u64(16, &mut v as *mut V as u64);
        match sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut a) {
            Ok(_) => Ok(Some(v)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(self.err("lookup", e)),
        }
    }

    /// Deletes `key`; `Ok(false)` if it was not there.
    pub fn delete(&self, key: &K) -> Result<bool, MapError> {
        let mut a = Attr::new();
        a.u32(0, self.fd.as_raw_fd() as u32)
            .u64(8, ptr(as_bytes(key)));
        match sys_bpf(BPF_MAP_DELETE_ELEM, &mut a) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(self.err("delete", e)),
        }
    }

    /// Every key (BPF_MAP_GET_NEXT_KEY walk).
    pub fn keys(&self) -> Result<Vec<K>, MapError> {
        let mut out = Vec::new();
        let mut prev: Option<K> = None;
        loop {
            let mut next = K::default();
            let mut a = Attr::new();
            a.u32(0, self.fd.as_raw_fd() as u32)
                .u64(8, prev.as_ref().map_or(0, |k| ptr(as_bytes(k))))
                .u64(16, &mut next as *mut K as u64);
            match sys_bpf(BPF_MAP_GET_NEXT_KEY, &mut a) {
                Ok(_) => {
                    out.push(next);
                    prev = Some(next);
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(out),
                Err(e) => return Err(self.err("get next key", e)),
            }
        }
    }

    /// Every (key, value); entries deleted during the walk are skipped.
    pub fn entries(&self) -> Result<Vec<(K, V)>, MapError> {
        let mut out = Vec::new();
        for k in self.keys()? {
            if let Some(v) = self.get(&k)? {
                out.push((k, v));
            }
        }
        Ok(out)
    }

    /// BPF_MAP_UPDATE_BATCH in chunks; on failure says how many entries were written.
    pub fn update_batch(&self, keys: &[K], values: &[V]) -> Result<(), MapError> {
        assert_eq!(
            keys.len(),
            values.len(),
            "update_batch: keys and values differ in length"
        );
        let total = keys.len();
        let mut done = 0;
        while done < total {
            let n = (total - done).min(BATCH_CHUNK);
            let mut a = Attr::new();
            a.u64(16, ptr(slice_as_bytes(&keys[done..done + n])))
                .u64(24, ptr(slice_as_bytes(&values[done..done + n])))
                .u32(32, n as u32)
                .u32(36, self.fd.as_raw_fd() as u32)
                .u64(40, BPF_ANY);
            if let Err(source) = sys_bpf(BPF_MAP_UPDATE_BATCH, &mut a) {
                let partial = a.get_u32(32) as usize;
                return Err(MapError::Batch {
                    name: self.name.clone(),
                    op: "update",
                    done: done + partial.min(n),
                    total,
                    source,
                });
            }
            done += n;
        }
        Ok(())
    }

    /// BPF_MAP_DELETE_BATCH; keys already gone are not an error (they are retried one by one).
    pub fn delete_batch(&self, keys: &[K]) -> Result<(), MapError> {
        let total = keys.len();
        let mut done = 0;
        while done < total {
            let n = (total - done).min(BATCH_CHUNK);
            let mut a = Attr::new();
            a.u64(16, ptr(slice_as_bytes(&keys[done..done + n])))
                .u32(32, n as u32)
                .u32(36, self.fd.as_raw_fd() as u32);
            match sys_bpf(BPF_MAP_DELETE_BATCH, &mut a) {
                Ok(_) => done += n,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    // The batch stops at the first missing key: skip it and go on.
                    let partial = (a.get_u32(32) as usize).min(n);
                    for k in &keys[done + partial..done + n] {
                        self.delete(k)?;
                    }
                    done += n;
                }
                Err(source) => {
                    return Err(MapError::Batch {
                        name: self.name.clone(),
                        op: "delete",
                        done: done + (a.get_u32(32) as usize).min(n),
                        total,
                        source,
                    })
                }
            }
        }
        Ok(())
    }
}

/// Entries per BPF_MAP_*_BATCH call (bounds the kernel's temporary buffers).
const BATCH_CHUNK: usize = 16384;

/// Puts an inner map (by fd) into a hash-of-maps under `key`.
pub fn outer_update<K: Pod>(outer: &OwnedFd, key: &K, inner: &OwnedFd) -> io::Result<()> {
    let fd = inner.as_raw_fd() as u32;
    let mut a = Attr::new();
    a.u32(0, outer.as_raw_fd() as u32)
        .u64(8, ptr(as_bytes(key)))
        .u64(16, ptr(&fd))
        .u64(24, BPF_ANY);
    sys_bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(|_| ())
}
