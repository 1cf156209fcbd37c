//! Container, pod and systemd-unit attribution from a cgroup path.
//!
//! The path is all we have without talking to a runtime; these are the shapes
//! the common runtimes and cgroup drivers create:
//!
//! | runtime / driver | path |
//! |---|---|
//! | docker, cgroupfs driver | `/docker/<id>` |
//! | docker, systemd driver | `/system.slice/docker-<id>.scope` |
//! | Kubernetes, cgroupfs driver | `/kubepods/burstable/pod<uid>/<id>` |
//! | Kubernetes + containerd, systemd driver | `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope` |
//! | CRI-O | `…/crio-<id>.scope` |
//! | podman | `…/libpod-<id>.scope` |

/// Labels derived from a cgroup path; empty when unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    pub unit: String,
    pub container_runtime: String,
    pub container_id: String,
    pub pod_uid: String,
}

const SCOPE_PREFIXES: &[(&str, &str)] =
    &[("docker-", "docker"), ("cri-containerd-", "containerd"), ("crio-", "cri-o"), ("libpod-", "podman")];

/// Derives the labels of `path` (relative to the hierarchy root, starting with `/`).
pub fn attribute(path: &str) -> Attribution {
    let mut a = Attribution::default();
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for (i, component) in components.iter().enumerate() {
        if let Some(uid) = pod_uid(component) {
            a.pod_uid = uid;
        }
        if let Some((runtime, id)) = scoped_container(component) {
            a.container_runtime = runtime.to_owned();
            a.container_id = id.to_owned();
            continue;
        }
        if is_container_id(component) {
            a.container_id = (*component).to_owned();
            let parent = if i > 0 { components[i - 1] } else { "" };
            if parent == "docker" {
                a.container_runtime = "docker".into();
            }
            continue;
        }
        if component.ends_with(".service") || component.ends_with(".scope") {
            a.unit = (*component).to_owned();
        }
    }
    a
}

/// `docker-<id>.scope` and the like: (runtime, id).
fn scoped_container(component: &str) -> Option<(&'static str, &str)> {
    let scope = component.strip_suffix(".scope")?;
    let (prefix, runtime) = SCOPE_PREFIXES.iter().find(|(p, _)| scope.starts_with(p))?;
    let id = &scope[prefix.len()..];
    is_container_id(id).then_some((*runtime, id))
}

/// A full 64-hex-digit container id.
fn is_container_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `pod<uid>` (cgroupfs driver) or `kubepods-<qos>-pod<uid_>.slice` (systemd driver).
fn pod_uid(component: &str) -> Option<String> {
    let slice = component.strip_suffix(".slice").unwrap_or(component);
    let start = slice.rfind("pod")? + 3;
    let before = &slice[..start - 3];
    if !(before.is_empty() || before.ends_with('-')) {
        return None;
    }
    let uid = slice[start..].replace('_', "-");
    let looks_like_uid = uid.len() == 36 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    looks_like_uid.then_some(uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f0b1c2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
    const UID: &str = "8a4c2f3e-1b2d-4e5f-9a8b-7c6d5e4f3a2b";

    #[test]
    fn docker_both_drivers() {
        for path in [format!("/docker/{ID}"), format!("/system.slice/docker-{ID}.scope")] {
            let a = attribute(&path);
            assert_eq!(
                (a.container_runtime.as_str(), a.container_id.as_str(), a.unit.as_str()),
                ("docker", ID, ""),
                "{path}"
            );
        }
    }

    #[test]
    fn kubernetes_both_drivers() {
        let systemd = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{ID}.scope",
            UID.replace('-', "_")
        );
        let a = attribute(&systemd);
        assert_eq!(
            a,
            Attribution {
                unit: "".into(),
                container_runtime: "containerd".into(),
                container_id: ID.into(),
                pod_uid: UID.into()
            }
        );
        let cgroupfs = attribute(&format!("/kubepods/burstable/pod{UID}/{ID}"));
        assert_eq!(
            (cgroupfs.pod_uid.as_str(), cgroupfs.container_id.as_str(), cgroupfs.container_runtime.as_str()),
            (UID, ID, "")
        );
        let crio = attribute(&format!("/kubepods.slice/kubepods-pod{}.slice/crio-{ID}.scope", UID.replace('-', "_")));
        assert_eq!((crio.container_runtime.as_str(), crio.pod_uid.as_str()), ("cri-o", UID));
    }

    #[test]
    fn systemd_units_and_plain_paths() {
        assert_eq!(attribute("/system.slice/nginx.service").unit, "nginx.service");
        assert_eq!(attribute("/user.slice/user-1000.slice/session-3.scope").unit, "session-3.scope");
        assert_eq!(attribute("/"), Attribution::default());
        assert_eq!(attribute("/podcast.service").pod_uid, "");
        assert_eq!(attribute(&format!("/x/libpod-{ID}.scope")).container_runtime, "podman");
    }
}
