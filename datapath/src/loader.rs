//! Loads the committed BPF objects (bpf/obj/*.o, built by bpf/build.sh), pins their maps under
//! a bpffs directory (adopting pins an earlier agent left), attaches the tc programs to devices
//! and the socket programs to a cgroup2 directory, and pins the links so everything keeps
//! working after the process that loaded it exits.
//!
//! Layout under the bpffs directory: `<map>_v3` for every map (see `maps::names`), and
//! `links/tc-<device>-{ingress,egress}`, `links/cgroup-<program>` for the attachments.
//!
//! A pinned link is adopted if it runs the program this agent carries (same tag, same maps,
//! same load-time settings): a restarted agent re-attaches nothing that is still attached.
//! A link that runs another program (a new release, or new settings) is switched to this
//! agent's program with BPF_LINK_UPDATE, in one step: no packet or connect() meets no program.
//! If the old program uses other maps than this agent's (another layout version: `<map>_v2`
//! pins beside this agent's fresh `<map>_v3`), the switch waits for [`Datapath::finish_upgrade`],
//! which the caller runs once the writer has programmed the new maps (make-before-break across
//! versions); see `upgrade.rs`.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use aya::programs::links::{CgroupAttachMode, FdLink, LinkError};
use aya::programs::{CgroupSockAddr, SchedClassifier, TcAttachType};
use aya::{Ebpf, EbpfLoader};

use crate::bpf_sys::{self, ProgInfo};

mod upgrade;
pub use upgrade::UpgradeStats;

#[repr(C, align(8))]
struct Aligned<B: ?Sized>(B);

/// The objects, 8-byte aligned as aya's ELF parser needs.
static LB_OBJ: &Aligned<[u8]> = &Aligned(*include_bytes!("../../bpf/obj/lb.o"));
static SOCK_OBJ: &Aligned<[u8]> = &Aligned(*include_bytes!("../../bpf/obj/sock.o"));

/// The tc programs in lb.o.
pub const TC_INGRESS: &str = "lb_ingress";
pub const TC_EGRESS: &str = "lb_egress";
/// The socket programs in sock.o.
pub const SOCK_PROGRAMS: [&str; 8] = [
    "sock_connect4",
    "sock_connect6",
    "sock_sendmsg4",
    "sock_sendmsg6",
    "sock_recvmsg4",
    "sock_recvmsg6",
    "sock_getpeername4",
    "sock_getpeername6",
];

const BPF_FS_MAGIC: i64 = 0xcafe4a11;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("bpffs at {path}: {what}: {source}")]
    Bpffs {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("loading {object}: {source}")]
    Load {
        object: &'static str,
        #[source]
        source: Box<aya::EbpfError>,
    },
    #[error("program {program}: {what}: {source}")]
    Program {
        program: String,
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("program {0} is not in the object")]
    Missing(String),
    #[error("{what}: {source}")]
    Kernel {
        what: String,
        #[source]
        source: io::Error,
    },
}

fn kerr(what: impl Into<String>) -> impl FnOnce(io::Error) -> LoadError {
    let what = what.into();
    move |source| LoadError::Kernel { what, source }
}

/// ELF objects to load instead of the committed bpf/obj/{lb,sock}.o (tests load an older
/// release's objects with it).
#[derive(Debug, Clone)]
pub struct Objects {
    pub lb: Vec<u8>,
    pub sock: Vec<u8>,
}

/// Bytes copied into 8-byte aligned storage, as aya's ELF parser needs.
struct AlignedBuf {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBuf {
    fn new(b: &[u8]) -> Self {
        let mut words = vec![0u64; b.len().div_ceil(8)];
        // SAFETY: words holds at least b.len() bytes; u64 has no invalid bit patterns.
        unsafe {
            std::ptr::copy_nonoverlapping(b.as_ptr(), words.as_mut_ptr().cast::<u8>(), b.len())
        };
        AlignedBuf {
            words,
            len: b.len(),
        }
    }
    fn bytes(&self) -> &[u8] {
        // SAFETY: the first len bytes of words were initialised in new.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }
}

/// Load-time settings of lb.o.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// bpffs directory for pins (mounted if it is not bpffs yet).
    pub bpffs: PathBuf,
    /// SNAT source toward backends on other nodes (IPv4 / IPv6). Unset: no SNAT for that
    /// family (remote backends are then DNATed only).
    pub node_ip4: Option<Ipv4Addr>,
    pub node_ip6: Option<Ipv6Addr>,
    /// Ports SNAT allocates from (inclusive); keep it clear of the NodePort range.
    pub snat_ports: (u16, u16),
    /// `(map name, max_entries)` overrides, e.g. a bigger CT table.
    pub max_entries: Vec<(&'static str, u32)>,
    /// Connection tracking lifetimes.
    pub ct_lifetimes: CtLifetimes,
    /// Objects to load instead of the committed ones (None: bpf/obj/{lb,sock}.o).
    pub objects: Option<Objects>,
}

/// How long a connection tracking entry lives after the flow's last packet, by the flow's
/// state, in seconds (lb.o's `CT_LIFETIME_*`; the defaults are Cilium 1.11's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtLifetimes {
    /// Established TCP.
    pub tcp: u32,
    /// TCP that has seen only SYNs.
    pub syn: u32,
    /// TCP after RST, or FIN both ways.
    pub close: u32,
    /// UDP.
    pub non_tcp: u32,
}

impl Default for CtLifetimes {
    fn default() -> Self {
        CtLifetimes {
            tcp: 21600,
            syn: 60,
            close: 10,
            non_tcp: 60,
        }
    }
}

impl LoadConfig {
    pub fn new(bpffs: impl Into<PathBuf>) -> Self {
        LoadConfig {
            bpffs: bpffs.into(),
            node_ip4: None,
            node_ip6: None,
            snat_ports: (33000, 60999),
            max_entries: Vec::new(),
            ct_lifetimes: CtLifetimes::default(),
            objects: None,
        }
    }
}

fn is_bpffs(path: &Path) -> io::Result<bool> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: statfs writes into the zeroed struct we pass; c is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as i64 == BPF_FS_MAGIC)
}

/// Makes `path` a bpffs directory: creates it and mounts bpffs on it unless it (or the mount it
/// lies in) already is one.
pub fn ensure_bpffs(path: &Path) -> Result<(), LoadError> {
    let err = |what, source| LoadError::Bpffs {
        path: path.to_path_buf(),
        what,
        source,
    };
    std::fs::create_dir_all(path).map_err(|e| err("create", e))?;
    if is_bpffs(path).map_err(|e| err("statfs", e))? {
        return Ok(());
    }
    let src = CString::new("bpf").map_err(|_| err("mount", io::ErrorKind::InvalidInput.into()))?;
    let dst = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| err("mount", io::ErrorKind::InvalidInput.into()))?;
    // SAFETY: all pointers are NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            src.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(err("mount -t bpf", io::Error::last_os_error()));
    }
    Ok(())
}

/// Both objects loaded, their maps pinned (or adopted) under `bpffs`.
pub struct Datapath {
    pub lb: Ebpf,
    pub sock: Ebpf,
    bpffs: PathBuf,
    ct_lifetimes: CtLifetimes,
    /// Pinned links that run a program of another map layout, to switch in `finish_upgrade`.
    pending: Vec<Pending>,
}

/// What an attach call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttachStats {
    pub attached: usize,
    /// Links already pinned by an earlier loader that run this agent's program: kept as they are.
    pub adopted: usize,
    /// Pinned links that ran another program over the same maps (another build or other
    /// load-time settings): switched to this agent's program (BPF_LINK_UPDATE).
    pub replaced: usize,
    /// Pinned links whose program uses other maps (another layout version): left running
    /// until [`Datapath::finish_upgrade`] switches them.
    pub staged: usize,
}

/// Which object a program is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Obj {
    Lb,
    Sock,
}

/// A pinned link waiting to be switched to this agent's program.
struct Pending {
    pin: PathBuf,
    program: &'static str,
    obj: Obj,
    link: OwnedFd,
    old_prog: OwnedFd,
    old_info: ProgInfo,
}

/// A program as the adopt-or-replace decision sees it: its code (the kernel's tag), the maps it
/// uses by id, and the contents of its read-only global data (the load-time settings).
#[derive(Debug, PartialEq, Eq)]
struct Identity {
    tag: [u8; 8],
    maps: BTreeSet<u32>,
    rodata: Vec<(String, Vec<u8>)>,
}

fn identity(info: &ProgInfo) -> io::Result<Identity> {
    let mut maps = BTreeSet::new();
    let mut rodata = Vec::new();
    for &id in &info.map_ids {
        let fd = bpf_sys::map_fd_by_id(id)?;
        let name = bpf_sys::map_name(&fd)?;
        if name.contains("rodata") {
            let mi = bpf_sys::map_info(&fd)?;
            let v = bpf_sys::map_lookup_raw(&fd, &0u32.to_ne_bytes(), mi.value_size as usize)?;
            rodata.push((name, v.unwrap_or_default()));
        } else if !name.contains('.') {
            // Global data other than .rodata (.data, .bss) is per-load state, not identity.
            maps.insert(id);
        }
    }
    rodata.sort();
    Ok(Identity {
        tag: info.tag,
        maps,
        rodata,
    })
}

/// What to do with a pinned link.
enum Verdict {
    Adopt,
    /// Another program over this agent's maps: switch now.
    Replace,
    /// Another program over other maps: switch after the writer filled this agent's maps.
    Stage,
}

fn prog_err(
    program: &str,
    what: impl Into<String>,
) -> impl FnOnce(aya::programs::ProgramError) -> LoadError + '_ {
    let what = what.into();
    move |e| LoadError::Program {
        program: program.to_string(),
        what,
        source: Box::new(e),
    }
}

/// Turns an attach link into an fd link and pins it at `pin`, so it outlives this process.
/// `not_fd` says why the conversion can fail for this kind of link.
fn pin_link<L>(program: &str, link: L, pin: &Path, not_fd: &str) -> Result<(), LoadError>
where
    L: TryInto<FdLink, Error = LinkError>,
{
    let fd: FdLink = link.try_into().map_err(|e| LoadError::Program {
        program: program.to_string(),
        what: not_fd.to_string(),
        source: Box::new(e),
    })?;
    fd.pin(pin).map_err(|e| LoadError::Program {
        program: program.to_string(),
        what: format!("pin link at {}", pin.display()),
        source: Box::new(e),
    })?;
    Ok(())
}

impl Datapath {
    /// Loads lb.o and sock.o. Maps are created and pinned, or adopted from their pins.
    /// Programs are not loaded into the kernel until something attaches (or tests) them.
    pub fn load(cfg: &LoadConfig) -> Result<Self, LoadError> {
        ensure_bpffs(&cfg.bpffs)?;
        let ip4 = cfg
            .node_ip4
            .map_or(0u32, |ip| u32::from_ne_bytes(ip.octets()));
        // `__be32 NODE_IP6[4]`: four words holding the address bytes in network order.
        let ip6: [u32; 4] = cfg.node_ip6.map_or([0; 4], |ip| {
            let o = ip.octets();
            std::array::from_fn(|i| {
                u32::from_ne_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
            })
        });
        let mut l = EbpfLoader::new();
        l.default_map_pin_directory(&cfg.bpffs)
            .override_global("NODE_IP4", &ip4, true)
            .override_global("NODE_IP6", &ip6, true)
            .override_global("SNAT_PORT_MIN", &cfg.snat_ports.0, true)
            .override_global("SNAT_PORT_MAX", &cfg.snat_ports.1, true)
            .override_global("CT_LIFETIME_TCP", &cfg.ct_lifetimes.tcp, true)
            .override_global("CT_LIFETIME_SYN", &cfg.ct_lifetimes.syn, true)
            .override_global("CT_LIFETIME_CLOSE", &cfg.ct_lifetimes.close, true)
            .override_global("CT_LIFETIME_NONTCP", &cfg.ct_lifetimes.non_tcp, true);
        for (name, n) in &cfg.max_entries {
            l.map_max_entries(name, *n);
        }
        let custom = cfg
            .objects
            .as_ref()
            .map(|o| (AlignedBuf::new(&o.lb), AlignedBuf::new(&o.sock)));
        let (lb_obj, sock_obj) = match &custom {
            Some((l, s)) => (l.bytes(), s.bytes()),
            None => (&LB_OBJ.0[..], &SOCK_OBJ.0[..]),
        };
        let lb = l.load(lb_obj).map_err(|e| LoadError::Load {
            object: "bpf/obj/lb.o",
            source: Box::new(e),
        })?;
        let mut s = EbpfLoader::new();
        s.default_map_pin_directory(&cfg.bpffs);
        for (name, n) in &cfg.max_entries {
            s.map_max_entries(name, *n);
        }
        let sock = s.load(sock_obj).map_err(|e| LoadError::Load {
            object: "bpf/obj/sock.o",
            source: Box::new(e),
        })?;
        Ok(Datapath {
            lb,
            sock,
            bpffs: cfg.bpffs.clone(),
            ct_lifetimes: cfg.ct_lifetimes,
            pending: Vec::new(),
        })
    }

    pub fn bpffs(&self) -> &Path {
        &self.bpffs
    }

    fn links_dir(&self) -> Result<PathBuf, LoadError> {
        let dir = self.bpffs.join("links");
        std::fs::create_dir_all(&dir).map_err(|source| LoadError::Bpffs {
            path: dir.clone(),
            what: "create links dir",
            source,
        })?;
        Ok(dir)
    }

    /// A tc program, loaded into the kernel (for attaching or BPF_PROG_TEST_RUN).
    pub fn classifier(&mut self, name: &str) -> Result<&mut SchedClassifier, LoadError> {
        let prog: &mut SchedClassifier = self
            .lb
            .program_mut(name)
            .ok_or_else(|| LoadError::Missing(name.to_string()))?
            .try_into()
            .map_err(prog_err(name, "not a classifier"))?;
        if prog.fd().is_err() {
            prog.load().map_err(prog_err(name, "load (verifier)"))?;
        }
        Ok(prog)
    }

    /// A socket program, loaded into the kernel.
    pub fn sock_program(&mut self, name: &str) -> Result<&mut CgroupSockAddr, LoadError> {
        let prog: &mut CgroupSockAddr = self
            .sock
            .program_mut(name)
            .ok_or_else(|| LoadError::Missing(name.to_string()))?
            .try_into()
            .map_err(prog_err(name, "not a cgroup sock_addr program"))?;
        if prog.fd().is_err() {
            prog.load().map_err(prog_err(name, "load (verifier)"))?;
        }
        Ok(prog)
    }

    /// A new fd of this agent's program `name` (loaded if it is not yet).
    fn prog_fd(&mut self, obj: Obj, name: &str) -> Result<OwnedFd, LoadError> {
        let fd = match obj {
            Obj::Lb => self.classifier(name)?.fd(),
            Obj::Sock => self.sock_program(name)?.fd(),
        }
        .map_err(prog_err(name, "fd"))?;
        fd.as_fd()
            .try_clone_to_owned()
            .map_err(kerr(format!("program {name}: dup fd")))
    }

    /// What the kernel says this agent's program `name` is (its tag, its maps).
    pub fn program_info(&mut self, name: &str) -> Result<ProgInfo, LoadError> {
        let obj = if SOCK_PROGRAMS.contains(&name) {
            Obj::Sock
        } else {
            Obj::Lb
        };
        let fd = self.prog_fd(obj, name)?;
        bpf_sys::prog_info(&fd).map_err(kerr(format!("program {name}: info")))
    }

    /// Decides what to do with the link pinned at `pin` (it exists), and does it unless it is
    /// staged. `Ok(false)`: `pin` holds no link (the caller attaches afresh).
    fn adopt_pinned(
        &mut self,
        pin: &Path,
        obj: Obj,
        program: &'static str,
        st: &mut AttachStats,
    ) -> Result<bool, LoadError> {
        let Ok(link) = bpf_sys::obj_get(pin) else {
            return Ok(false);
        };
        let what = |w: &str| format!("link {}: {w}", pin.display());
        let li = bpf_sys::link_info(&link).map_err(kerr(what("info")))?;
        let old_prog = bpf_sys::prog_fd_by_id(li.prog_id).map_err(kerr(what("its program")))?;
        let old_info = bpf_sys::prog_info(&old_prog).map_err(kerr(what("its program's info")))?;
        let new_prog = self.prog_fd(obj, program)?;
        let new_info =
            bpf_sys::prog_info(&new_prog).map_err(kerr(format!("program {program}: info")))?;
        let old_id = identity(&old_info).map_err(kerr(what("its program's maps")))?;
        let new_id = identity(&new_info).map_err(kerr(format!("program {program}: its maps")))?;
        let verdict = if old_id == new_id {
            Verdict::Adopt
        } else if old_id.maps.is_subset(&new_id.maps) {
            Verdict::Replace
        } else {
            Verdict::Stage
        };
        match verdict {
            Verdict::Adopt => st.adopted += 1,
            Verdict::Replace => {
                bpf_sys::link_update(&link, &new_prog, Some(&old_prog)).map_err(kerr(what(
                    "switch to this agent's program (BPF_LINK_UPDATE)",
                )))?;
                st.replaced += 1;
            }
            Verdict::Stage => {
                self.pending.push(Pending {
                    pin: pin.to_path_buf(),
                    program,
                    obj,
                    link,
                    old_prog,
                    old_info,
                });
                st.staged += 1;
            }
        }
        Ok(true)
    }

    /// Links staged for [`Datapath::finish_upgrade`].
    pub fn staged(&self) -> usize {
        self.pending.len()
    }

    /// Attaches lb_ingress / lb_egress to `device` (TCX) in the calling thread's network
    /// namespace, pinning the links; links pinned earlier are adopted.
    pub fn attach_tc(&mut self, device: &str) -> Result<AttachStats, LoadError> {
        let dir = self.links_dir()?;
        let mut st = AttachStats::default();
        for (name, kind, tag) in [
            (TC_INGRESS, TcAttachType::Ingress, "ingress"),
            (TC_EGRESS, TcAttachType::Egress, "egress"),
        ] {
            let pin = dir.join(format!("tc-{device}-{tag}"));
            if self.adopt_pinned(&pin, Obj::Lb, name, &mut st)? {
                continue;
            }
            let prog = self.classifier(name)?;
            let id = prog
                .attach(device, kind)
                .map_err(prog_err(name, format!("attach to {device}")))?;
            let link = prog.take_link(id).map_err(prog_err(name, "take link"))?;
            pin_link(
                name,
                link,
                &pin,
                "tc link is not an fd link (TCX needs kernel 6.6)",
            )?;
            st.attached += 1;
        }
        Ok(st)
    }

    /// Attaches every socket program to the cgroup2 directory `cgroup`, pinning the links.
    pub fn attach_cgroup(&mut self, cgroup: &Path) -> Result<AttachStats, LoadError> {
        let dir = self.links_dir()?;
        let file = std::fs::File::open(cgroup).map_err(|source| LoadError::Bpffs {
            path: cgroup.to_path_buf(),
            what: "open cgroup",
            source,
        })?;
        let mut st = AttachStats::default();
        for name in SOCK_PROGRAMS {
            let pin = dir.join(format!("cgroup-{name}"));
            if self.adopt_pinned(&pin, Obj::Sock, name, &mut st)? {
                continue;
            }
            let prog = self.sock_program(name)?;
            let id = prog
                // A bpf_link takes no attach flags (links always coexist with others).
                .attach(&file, CgroupAttachMode::Single)
                .map_err(prog_err(name, format!("attach to {}", cgroup.display())))?;
            let link = prog.take_link(id).map_err(prog_err(name, "take link"))?;
            pin_link(name, link, &pin, "cgroup link is not an fd link")?;
            st.attached += 1;
        }
        Ok(st)
    }
}
