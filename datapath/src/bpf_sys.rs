//! The one seam through which the map writer talks to the kernel: raw `bpf(2)` map commands on
//! fds of pinned maps (aya 0.14 has no batch operations and no mmap of array maps, so these are
//! done here), mmapped array maps, and a fault injector ([`fault`]) through which tests make a
//! chosen map operation fail. The loader's upgrade path uses the program, link and id commands
//! here too (aya 0.14 has no BPF_LINK_UPDATE).

use std::ffi::CString;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::maps::{as_bytes, slice_as_bytes, Pod};
use std::mem::size_of;

const BPF_MAP_CREATE: u32 = 0;
const BPF_MAP_LOOKUP_ELEM: u32 = 1;
const BPF_MAP_UPDATE_ELEM: u32 = 2;
const BPF_MAP_DELETE_ELEM: u32 = 3;
const BPF_MAP_GET_NEXT_KEY: u32 = 4;
const BPF_OBJ_GET: u32 = 7;
const BPF_PROG_GET_FD_BY_ID: u32 = 13;
const BPF_MAP_GET_FD_BY_ID: u32 = 14;
const BPF_OBJ_GET_INFO_BY_FD: u32 = 15;
const BPF_LINK_UPDATE: u32 = 29;
/// BPF_LINK_UPDATE: replace only if the link still runs `old_prog_fd`.
const BPF_F_REPLACE: u32 = 1 << 2;
const BPF_MAP_LOOKUP_BATCH: u32 = 24;
const BPF_MAP_UPDATE_BATCH: u32 = 26;
const BPF_MAP_DELETE_BATCH: u32 = 27;

pub const BPF_ANY: u64 = 0;
pub const BPF_MAP_TYPE_HASH: u32 = 1;
pub const BPF_MAP_TYPE_ARRAY: u32 = 2;
pub const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;
pub const BPF_F_NO_PREALLOC: u32 = 1 << 0;
pub const BPF_F_MMAPABLE: u32 = 1 << 10;
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
        ne_u32(&self.0, off)
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

/// A command that returns a new fd (BPF_OBJ_GET, *_GET_FD_BY_ID, BPF_MAP_CREATE).
fn sys_bpf_fd(cmd: u32, attr: &mut Attr) -> io::Result<OwnedFd> {
    let fd = sys_bpf(cmd, attr)?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// BPF_OBJ_GET_INFO_BY_FD into `info` (a bpf_{map,prog,link}_info of `info.len()` bytes).
fn obj_info(fd: &impl AsRawFd, info: &mut [u8]) -> io::Result<()> {
    let mut a = Attr::new();
    a.u32(0, fd.as_raw_fd() as u32)
        .u32(4, info.len() as u32)
        .u64(8, info.as_mut_ptr() as u64);
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a)?;
    Ok(())
}

/// The native-endian u32 at `off` of an info struct.
fn ne_u32(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
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
    sys_bpf_fd(BPF_OBJ_GET, &mut a)
}

pub fn map_info(fd: &OwnedFd) -> io::Result<MapInfo> {
    let mut info = [0u8; 96];
    obj_info(fd, &mut info)?;
    let w = |off: usize| ne_u32(&info, off);
    Ok(MapInfo {
        map_type: w(0),
        id: w(4),
        key_size: w(8),
        value_size: w(12),
        max_entries: w(16),
        map_flags: w(20),
    })
}

/// The kernel's name of a map (at most 15 bytes; e.g. `lb_ct_v3`, or `.rodata` for global data).
pub fn map_name(fd: &OwnedFd) -> io::Result<String> {
    let mut info = [0u8; 96];
    obj_info(fd, &mut info)?;
    Ok(c_name(&info[24..40]))
}

fn c_name(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// What the kernel says a loaded program is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgInfo {
    pub prog_type: u32,
    pub id: u32,
    /// The kernel's hash of the instructions, map references zeroed (`bpftool prog` shows it).
    pub tag: [u8; 8],
    /// Ids of the maps the program uses (global data maps included).
    pub map_ids: Vec<u32>,
    pub name: String,
}

pub fn prog_info(fd: &impl AsRawFd) -> io::Result<ProgInfo> {
    // struct bpf_prog_info: type@0 id@4 tag@8 ... nr_map_ids@52 map_ids@56 name@64.
    let get = |ids: &mut [u32]| -> io::Result<[u8; 80]> {
        let mut info = [0u8; 80];
        info[52..56].copy_from_slice(&(ids.len() as u32).to_ne_bytes());
        info[56..64].copy_from_slice(&(ids.as_mut_ptr() as u64).to_ne_bytes());
        obj_info(fd, &mut info)?;
        Ok(info)
    };
    let mut ids: Vec<u32> = Vec::new();
    let mut info = get(&mut ids)?;
    let n = ne_u32(&info, 52) as usize;
    if n > 0 {
        ids = vec![0; n];
        info = get(&mut ids)?;
        ids.truncate((ne_u32(&info, 52) as usize).min(n));
    }
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&info[8..16]);
    Ok(ProgInfo {
        prog_type: ne_u32(&info, 0),
        id: ne_u32(&info, 4),
        tag,
        map_ids: ids,
        name: c_name(&info[64..80]),
    })
}

/// What the kernel says a link is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkInfo {
    pub link_type: u32,
    pub id: u32,
    /// The program the link runs now.
    pub prog_id: u32,
}

pub fn link_info(fd: &impl AsRawFd) -> io::Result<LinkInfo> {
    // struct bpf_link_info: type@0 id@4 prog_id@8, then a per-type union.
    let mut info = [0u8; 64];
    obj_info(fd, &mut info)?;
    let w = |off: usize| ne_u32(&info, off);
    Ok(LinkInfo {
        link_type: w(0),
        id: w(4),
        prog_id: w(8),
    })
}

fn fd_by_id(cmd: u32, id: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32(0, id);
    sys_bpf_fd(cmd, &mut a)
}

/// A new fd of the loaded program with id `id`.
pub fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    fd_by_id(BPF_PROG_GET_FD_BY_ID, id)
}

/// A new fd of the map with id `id`.
pub fn map_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    fd_by_id(BPF_MAP_GET_FD_BY_ID, id)
}

/// BPF_LINK_UPDATE: makes `link` run `new_prog` instead, in one step (packets and syscalls see
/// either program, never none). With `old_prog`, only if the link still runs that program
/// (EPERM otherwise). tcx and cgroup links support it.
pub fn link_update(
    link: &impl AsRawFd,
    new_prog: &impl AsRawFd,
    old_prog: Option<&OwnedFd>,
) -> io::Result<()> {
    let mut a = Attr::new();
    a.u32(0, link.as_raw_fd() as u32)
        .u32(4, new_prog.as_raw_fd() as u32);
    if let Some(old) = old_prog {
        a.u32(8, BPF_F_REPLACE).u32(12, old.as_raw_fd() as u32);
    }
    sys_bpf(BPF_LINK_UPDATE, &mut a)?;
    Ok(())
}

/// One value of a map whose value size is `value_size`, as bytes (`None`: no such key).
pub fn map_lookup_raw(fd: &OwnedFd, key: &[u8], value_size: usize) -> io::Result<Option<Vec<u8>>> {
    let mut v = vec![0u8; value_size];
    let mut a = Attr::new();
    a.u32(0, fd.as_raw_fd() as u32)
        .u64(8, key.as_ptr() as u64)
        .u64(16, v.as_mut_ptr() as u64);
    match sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut a) {
        Ok(_) => Ok(Some(v)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates a map (tests and benchmarks make unpinned maps with it).
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
    sys_bpf_fd(BPF_MAP_CREATE, &mut a)
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
        if let Some(e) = fault::check(&self.name, "update") {
            return Err(self.err("update", e));
        }
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
        if let Some(e) = fault::check(&self.name, "delete") {
            return Err(self.err("delete", e));
        }
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
        if total == 0 {
            return Ok(());
        }
        if let Some((ok, source)) = fault::check_batch(&self.name, "update batch", total) {
            // Injected: the first `ok` entries are written for real, then the batch fails.
            self.update_batch(&keys[..ok], &values[..ok])?;
            return Err(MapError::Batch {
                name: self.name.clone(),
                op: "update",
                done: ok,
                total,
                source,
            });
        }
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
        if total == 0 {
            return Ok(());
        }
        if let Some((ok, source)) = fault::check_batch(&self.name, "delete batch", total) {
            self.delete_batch(&keys[..ok])?;
            return Err(MapError::Batch {
                name: self.name.clone(),
                op: "delete",
                done: ok,
                total,
                source,
            });
        }
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

impl<K: Pod, V: Pod> TypedMap<K, V> {
    /// Every (key, value) by BPF_MAP_LOOKUP_BATCH (hash and array maps), `chunk` at a time;
    /// far fewer syscalls than [`TypedMap::entries`].
    pub fn entries_batch(&self) -> Result<Vec<(K, V)>, MapError> {
        let mut out = Vec::new();
        self.lookup_batch_raw(size_of::<V>(), usize::MAX, |k, v| {
            let mut val = V::default();
            // SAFETY: v holds size_of::<V>() bytes written by the kernel; V is Pod.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    v.as_ptr(),
                    (&mut val as *mut V).cast::<u8>(),
                    size_of::<V>(),
                )
            };
            out.push((k, val));
        })?;
        Ok(out)
    }

    /// BPF_MAP_LOOKUP_BATCH with `vsize` bytes of value per key (per-CPU maps: one rounded
    /// value per possible CPU); calls `f` for at most `limit` entries.
    fn lookup_batch_raw(
        &self,
        vsize: usize,
        limit: usize,
        mut f: impl FnMut(K, &[u8]),
    ) -> Result<(), MapError> {
        if let Some(e) = fault::check(&self.name, "lookup batch") {
            return Err(self.err("lookup batch", e));
        }
        let chunk = BATCH_CHUNK.min(self.info.max_entries.max(1) as usize);
        let mut left = limit;
        let mut keys = vec![K::default(); chunk];
        let mut vals = vec![0u8; vsize * chunk];
        // The batch token: a bucket index (hash) or a key (array), both at most 8 bytes here.
        let (mut tok_in, mut tok_out) = ([0u8; 64], [0u8; 64]);
        let mut first = true;
        while left > 0 {
            let ask = chunk.min(left);
            let mut a = Attr::new();
            a.u64(0, if first { 0 } else { ptr(&tok_in[..]) })
                .u64(8, tok_out.as_mut_ptr() as u64)
                .u64(16, keys.as_mut_ptr() as u64)
                .u64(24, vals.as_mut_ptr() as u64)
                .u32(32, ask as u32)
                .u32(36, self.fd.as_raw_fd() as u32);
            let r = sys_bpf(BPF_MAP_LOOKUP_BATCH, &mut a);
            let n = (a.get_u32(32) as usize).min(ask);
            left -= n;
            let last = match r {
                Ok(_) => false,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => true,
                Err(e) => return Err(self.err("lookup batch", e)),
            };
            for (i, k) in keys.iter().enumerate().take(n) {
                f(*k, &vals[i * vsize..(i + 1) * vsize]);
            }
            if last || n == 0 {
                return Ok(());
            }
            tok_in = tok_out;
            first = false;
        }
        Ok(())
    }

    /// The values on every possible CPU of the first `limit` keys (an array: keys
    /// 0..limit), of a per-CPU map (`V` is one CPU's value, whose size must be a multiple of 8
    /// as the kernel strides per-CPU values by 8).
    pub fn percpu_entries(&self, ncpus: usize, limit: usize) -> Result<Vec<(K, Vec<V>)>, MapError> {
        let vs = size_of::<V>();
        if !vs.is_multiple_of(8) {
            return Err(self.err(
                "per-CPU lookup",
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "value size not a multiple of 8",
                ),
            ));
        }
        let mut out = Vec::new();
        self.lookup_batch_raw(vs * ncpus, limit, |k, bytes| {
            let per: Vec<V> = bytes
                .chunks_exact(vs)
                .map(|c| {
                    let mut v = V::default();
                    // SAFETY: c holds size_of::<V>() bytes; V is Pod.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            c.as_ptr(),
                            (&mut v as *mut V).cast::<u8>(),
                            vs,
                        )
                    };
                    v
                })
                .collect();
            out.push((k, per));
        })?;
        Ok(out)
    }

    /// One key's values on every possible CPU, of a per-CPU map.
    pub fn percpu_get(&self, key: &K, ncpus: usize) -> Result<Option<Vec<V>>, MapError> {
        let mut vals = vec![V::default(); ncpus];
        let mut a = Attr::new();
        a.u32(0, self.fd.as_raw_fd() as u32)
            .u64(8, ptr(as_bytes(key)))
            .u64(16, vals.as_mut_ptr() as u64);
        match sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut a) {
            Ok(_) => Ok(Some(vals)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(self.err("per-CPU lookup", e)),
        }
    }

    /// Sets `keys` to all-zero values on every CPU, of a per-CPU map (one batch).
    pub fn percpu_zero(&self, keys: &[K], ncpus: usize) -> Result<(), MapError> {
        if keys.is_empty() {
            return Ok(());
        }
        if let Some(e) = fault::check(&self.name, "update batch") {
            return Err(self.err("zero per-CPU values", e));
        }
        let zeros = vec![V::default(); ncpus * keys.len().min(BATCH_CHUNK)];
        for c in keys.chunks(BATCH_CHUNK) {
            let mut a = Attr::new();
            a.u64(16, ptr(slice_as_bytes(c)))
                .u64(24, ptr(slice_as_bytes(&zeros[..ncpus * c.len()])))
                .u32(32, c.len() as u32)
                .u32(36, self.fd.as_raw_fd() as u32)
                .u64(40, BPF_ANY);
            sys_bpf(BPF_MAP_UPDATE_BATCH, &mut a)
                .map_err(|e| self.err("zero per-CPU values", e))?;
        }
        Ok(())
    }
}

/// The number of possible CPUs (the kernel's per-CPU value count), from
/// /sys/devices/system/cpu/possible (e.g. `0-1`, `0,2-5`).
pub fn possible_cpus() -> io::Result<usize> {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/possible")?;
    parse_cpu_list(s.trim()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("/sys/devices/system/cpu/possible: cannot parse {s:?}"),
        )
    })
}

fn parse_cpu_list(s: &str) -> Option<usize> {
    let mut max = None;
    for part in s.split(',') {
        let hi = match part.split_once('-') {
            Some((_, hi)) => hi.parse::<usize>().ok()?,
            None => part.parse::<usize>().ok()?,
        };
        max = Some(max.map_or(hi, |m: usize| m.max(hi)));
    }
    max.map(|m| m + 1)
}

/// An array map (created with BPF_F_MMAPABLE) mapped into this process: user space reads and
/// writes its values in place, with no syscall per element. Programs see a store as soon as it
/// is made; ordering against them comes from the map update that publishes what was written.
#[derive(Debug)]
pub struct MmapArray<V> {
    ptr: *mut V,
    len: usize,
    map_len: usize,
    name: String,
    _fd: OwnedFd,
}

// SAFETY: the mapping is plain shared memory owned by this value; nothing is thread-bound.
unsafe impl<V: Send> Send for MmapArray<V> {}

impl<V: Pod> MmapArray<V> {
    /// Maps a pinned array map. `V` must have the value size, and that size must be a multiple
    /// of 8 (the kernel strides array values by 8, so the mapping is then exactly `[V]`).
    pub fn open_pinned(path: &Path, name: &str) -> Result<Self, MapError> {
        let m: TypedMap<u32, V> = TypedMap::open_pinned(path, name)?;
        Self::from_map(m)
    }

    pub fn from_map(m: TypedMap<u32, V>) -> Result<Self, MapError> {
        let info = m.info();
        let bad = |what: &str| MapError::Syscall {
            name: m.name.clone(),
            op: "mmap",
            source: io::Error::new(io::ErrorKind::InvalidInput, what.to_string()),
        };
        if info.map_type != BPF_MAP_TYPE_ARRAY || info.map_flags & BPF_F_MMAPABLE == 0 {
            return Err(bad("not an array map created with BPF_F_MMAPABLE"));
        }
        if !size_of::<V>().is_multiple_of(8) {
            return Err(bad("value size is not a multiple of 8"));
        }
        let len = info.max_entries as usize;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        let map_len = (len * size_of::<V>()).div_ceil(page) * page;
        // SAFETY: a fresh shared mapping of the map's fd, of the size the kernel allows.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                m.fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(m.err("mmap", io::Error::last_os_error()));
        }
        Ok(MmapArray {
            ptr: p.cast::<V>(),
            len,
            map_len,
            name: m.name.clone(),
            _fd: m.fd,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn as_slice(&self) -> &[V] {
        // SAFETY: the mapping holds `len` initialised Pod values and lives as long as self.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The values, writable. Programs may read them concurrently: write only entries nothing
    /// published points at, or use [`MmapArray::store_byte`] for a live one.
    pub fn as_mut_slice(&mut self) -> &mut [V] {
        // SAFETY: as above; &mut self makes this the only Rust reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// Stores one byte of value `idx` at byte `offset` as a single store (a live entry's flags).
    pub fn store_byte(&mut self, idx: usize, offset: usize, byte: u8) {
        assert!(
            idx < self.len && offset < size_of::<V>(),
            "store_byte out of range"
        );
        // SAFETY: in bounds (checked above) of the mapping.
        unsafe { std::ptr::write_volatile(self.ptr.add(idx).cast::<u8>().add(offset), byte) }
    }
}

impl<V> Drop for MmapArray<V> {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what open mapped; no reference outlives self.
        unsafe { libc::munmap(self.ptr.cast(), self.map_len) };
    }
}

/// Waits until every BPF program running now has finished (an RCU grace period, via
/// membarrier(MEMBARRIER_CMD_GLOBAL), which the kernel implements with synchronize_rcu()).
pub fn wait_for_programs() -> io::Result<()> {
    const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;
    // SAFETY: membarrier takes no pointers.
    let r = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Test seam: makes chosen map operations of the calling thread fail, so tests can check what
/// a failure half-way leaves behind. Off unless a test arms it; checking costs one
/// thread-local read per map operation.
pub mod fault {
    use std::cell::RefCell;
    use std::io;

    #[derive(Debug, Clone)]
    struct Armed {
        map: String,
        op: String,
        skip: usize,
        entries_ok: usize,
        errno: i32,
    }

    thread_local! {
        static ARMED: RefCell<Option<Armed>> = const { RefCell::new(None) };
    }

    /// The next operation `op` ("update", "delete", "update batch", "delete batch",
    /// "lookup batch") on the map named `map`, after `skip` such operations succeeded, fails with
    /// `errno`; a batch first writes `entries_ok` of its entries. Fires once.
    pub fn fail(map: &str, op: &str, skip: usize, entries_ok: usize, errno: i32) {
        ARMED.with(|a| {
            *a.borrow_mut() = Some(Armed {
                map: map.to_string(),
                op: op.to_string(),
                skip,
                entries_ok,
                errno,
            })
        });
    }

    /// Disarms the injector of the calling thread.
    pub fn clear() {
        ARMED.with(|a| *a.borrow_mut() = None);
    }

    fn fire(map: &str, op: &str) -> Option<Armed> {
        ARMED.with(|a| {
            let mut a = a.borrow_mut();
            let hit = match a.as_mut() {
                Some(f) if f.map == map && f.op == op => {
                    if f.skip == 0 {
                        true
                    } else {
                        f.skip -= 1;
                        false
                    }
                }
                _ => false,
            };
            if hit {
                a.take()
            } else {
                None
            }
        })
    }

    pub(crate) fn check(map: &str, op: &str) -> Option<io::Error> {
        fire(map, op).map(|f| io::Error::from_raw_os_error(f.errno))
    }

    pub(crate) fn check_batch(map: &str, op: &str, total: usize) -> Option<(usize, io::Error)> {
        fire(map, op).map(|f| {
            (
                f.entries_ok.min(total),
                io::Error::from_raw_os_error(f.errno),
            )
        })
    }
}

/// Entries per BPF_MAP_*_BATCH call (bounds the kernel's temporary buffers).
const BATCH_CHUNK: usize = 16384;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_as_the_kernel_writes_them() {
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0-1"), Some(2));
        assert_eq!(parse_cpu_list("0,2-5"), Some(6));
        assert_eq!(parse_cpu_list("x"), None);
        assert_eq!(parse_cpu_list(""), None);
    }
}
