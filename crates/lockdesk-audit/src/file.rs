//! Writing an export to a file: the one routine the CLI (`audit export --out`) and the desktop
//! app's supervisor screen use, so both follow one rule: **never a partial file under the
//! target's name**. The bytes go to a temporary file beside the target (same folder, so the
//! rename stays on one file system), owner-only (0600: an export holds personal data), which is
//! flushed, synced and then renamed over the target; the folder is synced after the rename. On
//! any error the temporary file is removed and the target is as it was (absent, or its previous
//! content). A target that exists and is not a regular file (`/dev/null`, a FIFO) is written in
//! place: there is nothing to rename over, and nothing durable to sync.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The temporary file [`write_file`] writes before renaming it to `target`:
/// `<target>.part` in the same folder.
pub fn partial_path(target: &Path) -> PathBuf {
    let mut name: OsString = target.file_name().map(OsString::from).unwrap_or_default();
    name.push(".part");
    target.with_file_name(name)
}

fn create_private(path: &Path) -> std::io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// Calls `write` with a buffered writer on a temporary file beside `target` and, if it returns
/// `Ok`, syncs the file and renames it to `target` (see the module's rule). `write`'s error, or
/// an I/O error of ours (converted with `E::from`), leaves no file behind.
pub fn write_file<T, E: From<std::io::Error>>(
    target: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<T, E>,
) -> Result<T, E> {
    if let Ok(m) = std::fs::metadata(target) {
        if !m.is_file() && !m.is_dir() {
            // A device or a pipe: written in place.
            let mut w =
                BufWriter::with_capacity(1 << 16, OpenOptions::new().write(true).open(target)?);
            let out = write(&mut w)?;
            w.flush()?;
            return Ok(out);
        }
    }
    if target.file_name().is_none() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a file name", target.display()),
        )
        .into());
    }
    let part = partial_path(target);
    let done = (|| {
        let mut w = BufWriter::with_capacity(1 << 16, create_private(&part)?);
        let out = write(&mut w)?;
        w.flush()?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&part, target)?;
        Ok(out)
    })();
    match done {
        Ok(out) => {
            // The rename itself made durable (best effort: not every system syncs a folder).
            let dir = match target.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(out)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    #[allow(dead_code)] // the I/O error is shown by `Debug` when a test fails
    enum Failed {
        Io(std::io::Error),
        Midway,
    }

    impl From<std::io::Error> for Failed {
        fn from(e: std::io::Error) -> Self {
            Failed::Io(e)
        }
    }

    #[test]
    fn a_written_file_appears_whole_owner_only_and_nothing_else_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.csv");
        let n = write_file(&target, |w| {
            w.write_all(b"a,b\n")?;
            Ok::<_, Failed>(4)
        })
        .unwrap();
        assert_eq!(n, 4);
        assert_eq!(std::fs::read(&target).unwrap(), b"a,b\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [OsString::from("out.csv")]);
    }

    #[test]
    fn a_failure_midway_leaves_the_previous_file_and_no_partial_one() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.jsonl");
        std::fs::write(&target, b"previous\n").unwrap();
        let r = write_file(&target, |w| {
            w.write_all(&vec![b'x'; 1 << 20])?;
            Err::<(), _>(Failed::Midway)
        });
        assert!(matches!(r, Err(Failed::Midway)));
        assert_eq!(std::fs::read(&target).unwrap(), b"previous\n");
        assert!(!partial_path(&target).exists());
        // Into a folder that does not exist: an error, nothing created.
        let missing = dir.path().join("no/such/out.csv");
        let r = write_file(&missing, |w| w.write_all(b"x").map_err(Failed::Io));
        assert!(matches!(r, Err(Failed::Io(_))));
        assert!(!dir.path().join("no").exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_device_is_written_in_place_not_replaced() {
        let null = Path::new("/dev/null");
        write_file(null, |w| w.write_all(b"discarded").map_err(Failed::Io)).unwrap();
        assert!(
            !std::fs::metadata(null).unwrap().is_file(),
            "still the device"
        );
        assert!(!partial_path(null).exists());
    }
}
