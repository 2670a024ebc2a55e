//! The standalone objects source (`bgplane agent --objects PATH`): a YAML file, or a directory
//! read as `datapath::k8s::load` reads it, polled for changes.
//!
//! Change detection is a cheap poll (the agent polls every second), not inotify: each poll
//! `stat`s the file or every entry of the tree (following symlinks) and compares path, size,
//! inode, mtime and ctime with the previous poll. Why a poll:
//! - it sees every way a file gets replaced the same way: editors and `kubectl`-style tools that
//!   write a temp file and rename it over the old one (an inotify watch stays on the old inode
//!   and has to be re-armed), a mounted ConfigMap whose `..data` symlink is swapped atomically,
//!   files and subdirectories appearing and disappearing, and the path itself missing for a
//!   while;
//! - it adds no dependency (the `notify` crate brings its own event thread and platform
//!   backends) and no fd per watched directory;
//! - the cost is one `stat` per entry per second, nothing next to planning, and one second of
//!   latency is fine for a source that stands in for Kubernetes watchers.
//!
//! Its limit: two writes of the same size within one timestamp tick of the filesystem look like
//! one, and the second is seen only with the next change. Tools that write whole files (and
//! renames) never hit it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use datapath::k8s::{self, Objects};

/// What one entry looked like at a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stamp {
    File {
        len: u64,
        dev: u64,
        ino: u64,
        mtime_ns: i128,
        ctime_ns: i128,
    },
    Dir,
    /// Could not be stat'ed (missing, permission): the error kind, so a change of it counts.
    Error(std::io::ErrorKind),
}

/// The state of a file or directory tree, comparable between polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(Vec<(PathBuf, Stamp)>);

fn ns(secs: i64, nsecs: i64) -> i128 {
    i128::from(secs) * 1_000_000_000 + i128::from(nsecs)
}

/// Deepest directory nesting followed (a symlink loop stops here instead of recursing forever).
const MAX_DEPTH: usize = 16;

impl Fingerprint {
    /// Stats `path` and, when it is a directory, everything below it whose name does not start
    /// with `.` (what `datapath::k8s::load` skips), in name order.
    pub fn of(path: &Path) -> Fingerprint {
        let mut out = Vec::new();
        walk(path, 0, &mut out);
        Fingerprint(out)
    }

    /// How many entries were looked at.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn walk(path: &Path, depth: usize, out: &mut Vec<(PathBuf, Stamp)>) {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            out.push((path.to_path_buf(), Stamp::Error(e.kind())));
            return;
        }
    };
    if !meta.is_dir() {
        out.push((
            path.to_path_buf(),
            Stamp::File {
                len: meta.len(),
                dev: meta.dev(),
                ino: meta.ino(),
                mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
                ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            },
        ));
        return;
    }
    out.push((path.to_path_buf(), Stamp::Dir));
    if depth >= MAX_DEPTH {
        return;
    }
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            out.push((path.join("."), Stamp::Error(e.kind())));
            return;
        }
    };
    entries.sort();
    for e in entries {
        let hidden = e
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if !hidden {
            walk(&e, depth + 1, out);
        }
    }
}

/// The objects at one path, re-read when they change.
#[derive(Debug)]
pub struct ObjectsFiles {
    path: PathBuf,
    last: Option<Fingerprint>,
}

impl ObjectsFiles {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ObjectsFiles {
            path: path.into(),
            last: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `Some(result)` when the files changed since the last poll (always on the first poll),
    /// `None` when nothing changed. The fingerprint is taken before reading, so a write that
    /// lands while the files are read shows up as a change at the next poll.
    pub fn poll(&mut self) -> Option<Result<Objects, k8s::LoadError>> {
        let now = Fingerprint::of(&self.path);
        if self.last.as_ref() == Some(&now) {
            return None;
        }
        self.last = Some(now);
        Some(k8s::load(&self.path))
    }

    /// Forget the last fingerprint: the next poll reads the files whatever they look like.
    pub fn invalidate(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n";
    const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: d}\n\
                       spec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}\n";

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bgplane-src-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_directory_is_read_once_then_again_only_after_a_change() {
        let d = tmpdir("dir");
        std::fs::write(d.join("node.yaml"), NODE).unwrap();
        let mut src = ObjectsFiles::new(&d);
        let first = src.poll().expect("first poll reads").unwrap();
        assert_eq!(first.nodes.len(), 1);
        assert!(first.services.is_empty());
        assert!(src.poll().is_none(), "nothing changed");

        // A new file, written as editors do: a hidden temp file renamed into place.
        std::fs::write(d.join(".svc.yaml.tmp"), SVC).unwrap();
        assert!(src.poll().is_none(), "hidden files are not objects");
        std::fs::rename(d.join(".svc.yaml.tmp"), d.join("svc.yaml")).unwrap();
        let second = src.poll().expect("rename seen").unwrap();
        assert_eq!(second.services.len(), 1);
        assert!(src.poll().is_none());

        // Removed again.
        std::fs::remove_file(d.join("svc.yaml")).unwrap();
        assert!(src
            .poll()
            .expect("removal seen")
            .unwrap()
            .services
            .is_empty());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn an_in_place_edit_and_a_parse_error_are_reported_and_a_missing_path_is_an_error() {
        let d = tmpdir("file");
        let f = d.join("objects.yaml");
        std::fs::write(&f, NODE).unwrap();
        let mut src = ObjectsFiles::new(&f);
        assert!(src.poll().unwrap().is_ok());
        // Same inode, different size.
        std::fs::write(&f, format!("{NODE}---\n{SVC}")).unwrap();
        assert_eq!(src.poll().expect("edit seen").unwrap().services.len(), 1);
        std::fs::write(&f, "apiVersion: v1\nkind: Service\nmetadata: [oops\n").unwrap();
        let err = src.poll().expect("edit seen").unwrap_err().to_string();
        assert!(err.contains("objects.yaml"), "{err}");
        assert!(
            src.poll().is_none(),
            "a broken file is not re-read until it changes"
        );
        src.invalidate();
        assert!(src.poll().expect("invalidated").is_err());

        std::fs::remove_file(&f).unwrap();
        let err = src
            .poll()
            .expect("missing is a change")
            .unwrap_err()
            .to_string();
        assert!(err.contains("objects.yaml"), "{err}");
        assert!(src.poll().is_none());
        std::fs::write(&f, NODE).unwrap();
        assert!(src.poll().expect("back").is_ok());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_swapped_configmap_style_symlink_counts_as_a_change() {
        let d = tmpdir("cm");
        let v1 = d.join("..v1");
        let v2 = d.join("..v2");
        std::fs::create_dir_all(&v1).unwrap();
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(v1.join("objects.yaml"), NODE).unwrap();
        // Same size on purpose: only the inode tells them apart.
        std::fs::write(v2.join("objects.yaml"), NODE.replace("n1", "n2")).unwrap();
        std::os::unix::fs::symlink("..v1", d.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/objects.yaml", d.join("objects.yaml")).unwrap();
        let mut src = ObjectsFiles::new(&d);
        let o = src.poll().unwrap().unwrap();
        assert_eq!(o.nodes[0].metadata.name.as_deref(), Some("n1"));
        // Atomic swap, as the kubelet does it.
        std::os::unix::fs::symlink("..v2", d.join("..data_tmp")).unwrap();
        std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
        let o = src.poll().expect("swap seen").unwrap();
        assert_eq!(o.nodes[0].metadata.name.as_deref(), Some("n2"));
        assert_eq!(o.nodes.len(), 1, "..data must not be read a second time");
        let _ = std::fs::remove_dir_all(&d);
    }
}
