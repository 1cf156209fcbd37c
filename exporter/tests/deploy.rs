//! The deployment files, checked structurally (no cluster, Docker engine or
//! collector binary runs on the build machines): every flag they pass exists,
//! selectors match, the DaemonSet keeps only the capabilities it needs, every
//! mounted file exists, and the PrometheusRule is generated from alerts/.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{repo, require_tool, run_tool, yaml};
use serde_norway::Value;
use std::collections::BTreeSet;

/// Every `--flag` of the exporter.
fn known_flags() -> BTreeSet<String> {
    memleak_exporter::cli::command().get_arguments().filter_map(|a| a.get_long().map(|l| format!("--{l}"))).collect()
}

fn assert_flags_exist(args: impl IntoIterator<Item = String>, context: &str) {
    let known = known_flags();
    let mut seen = 0;
    for arg in args {
        let flag = arg.split('=').next().unwrap().to_owned();
        if flag.starts_with("--") {
            assert!(known.contains(&flag), "{context}: {flag} is not a flag of memleak-exporter");
            seen += 1;
        }
    }
    assert!(seen > 0, "{context}: no flags found");
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect()
}

const PROMETHEUS_RULE_HEADER: &str = "\
# Generated from alerts/rules/memleak.rules.yml by exporter/tests/deploy.rs:
# do not edit; run `UPDATE_GENERATED=1 cargo test -p memleak-exporter --test deploy`.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: memleak-exporter
  namespace: monitoring
  labels:
    app.kubernetes.io/name: memleak-exporter
    # kube-prometheus-stack's Prometheus loads only the rules labelled with its Helm release: add
    # `release: <release name>` (or install it with
    # prometheus.prometheusSpec.ruleSelectorNilUsesHelmValues=false). Jsonnet users: mixin/.
spec:
";

#[test]
fn the_prometheus_rule_is_generated_from_the_rules() {
    let rules = std::fs::read_to_string(repo("alerts/rules/memleak.rules.yml")).unwrap();
    let body: String = rules
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| if l.is_empty() { "\n".to_owned() } else { format!("  {l}\n") })
        .collect();
    let generated = format!("{PROMETHEUS_RULE_HEADER}{body}");
    let path = repo("deploy/kubernetes/prometheusrule.yaml");
    if std::env::var_os("UPDATE_GENERATED").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(committed == generated, "{} is stale: rerun with UPDATE_GENERATED=1", path.display());
    // And structurally: the same groups as the rule file.
    let rule: Value = serde_norway::from_str(&committed).unwrap();
    let source: Value = serde_norway::from_str(&rules).unwrap();
    assert_eq!(rule["spec"]["groups"], source["groups"]);
}

#[test]
fn the_daemonset_is_least_privilege_and_wired_to_its_service() {
    let ds = yaml("deploy/kubernetes/daemonset.yaml");
    assert_eq!(ds["kind"], "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], Value::Bool(true));
    assert_eq!(pod["automountServiceAccountToken"], Value::Bool(false));
    let labels = &ds["spec"]["template"]["metadata"]["labels"];
    assert_eq!(&ds["spec"]["selector"]["matchLabels"], labels);
    let c = &pod["containers"][0];
    let sec = &c["securityContext"];
    assert_eq!(sec["privileged"], Value::Bool(false));
    assert_eq!(sec["allowPrivilegeEscalation"], Value::Bool(false));
    assert_eq!(sec["readOnlyRootFilesystem"], Value::Bool(true));
    assert_eq!(strings(&sec["capabilities"]["drop"]), ["ALL"]);
    let added: BTreeSet<String> = strings(&sec["capabilities"]["add"]).into_iter().collect();
    let needed: BTreeSet<String> = ["SYS_PTRACE", "DAC_READ_SEARCH", "BPF", "PERFMON"].map(String::from).into();
    assert_eq!(added, needed, "exactly the capabilities the exporter uses");
    let args = strings(&c["args"]);
    assert_flags_exist(args.clone(), "daemonset");
    assert!(args.contains(&"--path.rootfs=/host".to_owned()));
    let mounts: Vec<(String, bool)> = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| (m["mountPath"].as_str().unwrap().to_owned(), m["readOnly"] == Value::Bool(true)))
        .collect();
    // tracefs where aya looks for it, for the eBPF collectors' tracepoints.
    for path in ["/host/proc", "/host/sys", "/host/sys/fs/cgroup", "/host/sys/kernel/btf", "/sys/kernel/tracing"] {
        assert!(mounts.contains(&(path.to_owned(), true)), "{path} must be mounted read-only");
    }
    let token_dir = mounts.iter().find(|(p, _)| p.starts_with("/etc/memleak-exporter")).unwrap();
    let spool = memleak_exporter::options::capture::DEFAULT_DIR;
    assert!(
        mounts.iter().any(|(p, read_only)| spool.starts_with(&format!("{p}/")) && !read_only),
        "the spool {spool} must be on a writable volume (the root file system is read-only)"
    );
    assert!(args.iter().any(|a| a.starts_with(&format!("--webhook.token-file={}", token_dir.0))));
    for probe in ["livenessProbe", "readinessProbe"] {
        let path = c[probe]["httpGet"]["path"].as_str().unwrap();
        assert!(["/-/healthy", "/-/ready"].contains(&path), "{probe} {path}");
    }
    let port = &c["ports"][0];
    assert_eq!((port["name"].as_str(), port["containerPort"].as_u64()), (Some("metrics"), Some(9487)));

    let svc = yaml("deploy/kubernetes/service.yaml");
    assert_eq!(&svc["spec"]["selector"], labels, "the Service selects the DaemonSet's pods");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "metrics");
    let sm = yaml("deploy/kubernetes/servicemonitor.yaml");
    assert_eq!(
        &sm["spec"]["selector"]["matchLabels"], &svc["metadata"]["labels"],
        "the ServiceMonitor selects the Service"
    );
    assert_eq!(sm["spec"]["endpoints"][0]["port"], svc["spec"]["ports"][0]["name"]);
    // The relabeling adds `node`; `instance` stays the pod's address, which the captures links need.
    let relabeled = &sm["spec"]["endpoints"][0]["relabelings"][0];
    assert_eq!(
        (relabeled["sourceLabels"][0].as_str(), relabeled["targetLabel"].as_str()),
        (Some("__meta_kubernetes_pod_node_name"), Some("node"))
    );
    let text = std::fs::read_to_string(repo("deploy/kubernetes/servicemonitor.yaml")).unwrap();
    assert!(
        !text.contains("instance label per node"),
        "the ServiceMonitor's comment promises an instance label it does not set"
    );
    for file in ["servicemonitor.yaml", "prometheusrule.yaml"] {
        let text = std::fs::read_to_string(repo(&format!("deploy/kubernetes/{file}"))).unwrap();
        assert!(
            text.contains("release: <release name>"),
            "{file}: says nothing of kube-prometheus-stack's release selector"
        );
    }
    let sa = yaml("deploy/kubernetes/serviceaccount.yaml");
    assert_eq!(pod["serviceAccountName"], sa["metadata"]["name"]);
    for file in strings(&yaml("deploy/kubernetes/kustomization.yaml")["resources"]) {
        assert!(repo(&format!("deploy/kubernetes/{file}")).is_file(), "kustomization names missing {file}");
    }
}

#[test]
fn the_compose_stack_mounts_existing_files_and_valid_flags() {
    let compose = yaml("deploy/compose/compose.yaml");
    let services = compose["services"].as_mapping().unwrap();
    let names: BTreeSet<&str> = services.keys().map(|k| k.as_str().unwrap()).collect();
    for needed in ["memleak-exporter", "prometheus", "alertmanager", "grafana", "otel-collector"] {
        assert!(names.contains(needed), "compose lacks {needed}");
    }
    assert_flags_exist(strings(&compose["services"]["memleak-exporter"]["command"]), "compose exporter");
    for (name, service) in services {
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let source = volume.as_str().unwrap().split(':').next().unwrap();
            if source.starts_with('.') {
                let path = repo("deploy/compose").join(source);
                assert!(path.exists(), "{name:?}: mounts {source}, which does not exist");
            }
        }
    }
    // The Alertmanager of the stack calls the exporter's webhook with the shared token.
    let am = yaml("deploy/compose/alertmanager.yml");
    let hook = &am["receivers"][1]["webhook_configs"][0];
    assert_eq!(hook["url"], "http://memleak-exporter:9487/api/v1/alerts");
}

/// Where `service` mounts the volume `volume`.
fn volume_mount(service: &Value, volume: &str) -> String {
    let mount = service["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .find_map(|v| v.strip_prefix(&format!("{volume}:")))
        .unwrap_or_else(|| panic!("{service:?} does not mount the volume {volume}"));
    mount.trim_end_matches(":ro").to_owned()
}

#[test]
fn the_compose_stack_ships_no_token_and_makes_one_on_first_start() {
    let compose = yaml("deploy/compose/compose.yaml");
    let services = &compose["services"];
    assert!(!repo("deploy/compose/webhook-token").exists(), "a token file in the repository is everyone's token");
    assert!(compose["volumes"].as_mapping().unwrap().contains_key("webhook-token"));
    let maker = &services["webhook-token"];
    let made_in = volume_mount(maker, "webhook-token");
    // The exporter and Alertmanager wait for it and read the same file.
    for (service, file_in) in [("memleak-exporter", "--webhook.token-file="), ("alertmanager", "")] {
        let s = &services[service];
        assert_eq!(s["depends_on"]["webhook-token"]["condition"], "service_completed_successfully", "{service}");
        let mounted = volume_mount(s, "webhook-token");
        let expected = format!("{mounted}/webhook-token");
        if service == "memleak-exporter" {
            assert!(strings(&s["command"]).contains(&format!("{file_in}{expected}")), "{service} reads {expected}");
        } else {
            let am = yaml("deploy/compose/alertmanager.yml");
            let credentials = &am["receivers"][1]["webhook_configs"][0]["http_config"]["authorization"];
            assert_eq!(credentials["credentials_file"].as_str(), Some(expected.as_str()));
        }
    }
    // Run its script (as root, like the container) in a folder standing for the volume.
    if !common::is_root() {
        eprintln!("SKIP: running the token script needs root (it gives the file to nobody)");
        return;
    }
    assert_eq!(strings(&maker["entrypoint"]), ["/bin/sh", "-ec"]);
    let script = maker["command"][0].as_str().unwrap();
    let run = |dir: &std::path::Path| {
        let out = std::process::Command::new("/bin/sh")
            .args(["-ec", &script.replace(&made_in, dir.to_str().unwrap())])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::read_to_string(dir.join("webhook-token")).unwrap()
    };
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let token = run(one.path());
    assert_eq!(token.len(), 64, "32 random bytes in hex: {token:?}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token:?}");
    assert_eq!(run(one.path()), token, "a later start keeps the token");
    assert_ne!(run(two.path()), token, "each stack gets its own");
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(one.path().join("webhook-token")).unwrap();
    assert_eq!(
        (meta.mode() & 0o777, meta.uid(), meta.gid()),
        (0o440, 65534, 0),
        "readable by nobody and root's group only"
    );
    // The exporter accepts it as its token file.
    let dir = one.path().to_str().unwrap().to_owned();
    let out = std::process::Command::new(common::BIN)
        .args(["--config.check", "--webhook.token-file", &format!("{dir}/webhook-token")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_stack_configs_pass_promtool_and_amtool() {
    run_tool("amtool", "prometheus-alertmanager", &["check-config", "deploy/compose/alertmanager.yml"]);
    run_tool("promtool", "prometheus", &["check", "config", "--syntax-only", "deploy/compose/prometheus.yml"]);
}

#[test]
fn the_systemd_unit_passes_valid_flags_and_is_hardened() {
    let unit = std::fs::read_to_string(repo("deploy/systemd/memleak-exporter.service")).unwrap();
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
    assert_flags_exist(exec.split_whitespace().skip(1).map(String::from), "systemd unit");
    // The commented settings an operator uncomments name real flags too.
    for line in unit.lines().filter_map(|l| l.strip_prefix("#Environment=MEMLEAK_EXPORTER_ARGS=")) {
        assert_flags_exist(line.split_whitespace().map(String::from), "systemd unit (commented)");
    }
    assert!(exec.contains("$MEMLEAK_EXPORTER_ARGS"), "the commented arguments reach ExecStart");
    for setting in ["NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet=", "MemoryMax="] {
        assert!(unit.contains(setting), "the unit lacks {setting}");
    }
    // ProtectSystem=strict leaves only the state directory writable: the spool must be in it.
    let state = unit.lines().find_map(|l| l.strip_prefix("StateDirectory=")).expect("the unit has a StateDirectory");
    let spool = exec.split_whitespace().find_map(|a| a.strip_prefix("--capture.dir=")).expect("--capture.dir");
    assert!(spool.starts_with(&format!("/var/lib/{state}/")), "{spool} is outside /var/lib/{state}");
    assert!(memleak_exporter::options::capture::DEFAULT_DIR.starts_with(&format!("/var/lib/{state}/")));
    // The open-file limit holds the default connection cap beside the default collectors' files:
    // started under it, the exporter keeps its cap (it would log that it lowered it).
    let files: usize = unit.lines().find_map(|l| l.strip_prefix("LimitNOFILE=")).unwrap().parse().unwrap();
    let limited = format!("ulimit -n {files} && exec \"$0\" \"$@\"");
    let exporter = common::Exporter::start_with(Some(std::path::Path::new("/bin/sh")), &["-c", &limited], &[]);
    let log = exporter.stderr();
    assert!(!log.contains("lowered to fit the open-file limit"), "LimitNOFILE={files} is too low: {log}");
    // systemd waits longer than the exporter's own shutdown deadline before it kills.
    let stop: u64 =
        unit.lines().find_map(|l| l.strip_prefix("TimeoutStopSec=")).unwrap().trim_end_matches('s').parse().unwrap();
    assert!(stop > 5, "TimeoutStopSec={stop}s must exceed --web.shutdown-timeout's default 5s");
}

#[test]
fn the_collector_pipelines_use_defined_components() {
    for file in ["otel-collector/agent.yaml", "otel-collector/gateway.yaml"] {
        let config = yaml(file);
        let pipelines = config["service"]["pipelines"].as_mapping().unwrap();
        assert!(!pipelines.is_empty());
        for (name, pipeline) in pipelines {
            for section in ["receivers", "processors", "exporters"] {
                for component in strings(&pipeline[section]) {
                    assert!(
                        config[section].as_mapping().unwrap().contains_key(component.as_str()),
                        "{file}: pipeline {name:?} uses {section} {component} that is not defined"
                    );
                }
            }
        }
        // Every signal the exporter pushes has a pipeline fed by the OTLP receiver.
        for signal in ["metrics", "logs", "profiles"] {
            assert!(strings(&pipelines[signal]["receivers"]).contains(&"otlp".to_owned()), "{file}: {signal}");
        }
    }
}

/// Component types and the signals each takes, as the components' `metadata.yaml` declare them in
/// OpenTelemetry Collector v0.159.0 (core: receiver/otlpreceiver, processor/batchprocessor,
/// processor/memorylimiterprocessor, exporter/otlpexporter, exporter/otlphttpexporter; contrib:
/// exporter/prometheusremotewriteexporter). v0.159.0 names the OTLP exporters `otlp_grpc` and
/// `otlp_http` and keeps `otlp` and `otlphttp` as aliases, which older releases know too. No
/// Collector binary can be built here (its Go is too old) to load the files for real.
const COLLECTOR_COMPONENTS: &[(&str, &[&str], &[&str])] = &[
    ("receivers", &["otlp"], &["traces", "metrics", "logs", "profiles"]),
    ("processors", &["memory_limiter"], &["traces", "metrics", "logs", "profiles"]),
    ("processors", &["batch"], &["traces", "metrics", "logs"]),
    ("exporters", &["otlp_grpc", "otlp"], &["traces", "metrics", "logs", "profiles"]),
    ("exporters", &["otlp_http", "otlphttp"], &["traces", "metrics", "logs", "profiles"]),
    ("exporters", &["prometheusremotewrite"], &["metrics"]),
];

#[test]
fn every_collector_component_exists_and_takes_its_pipelines_signal() {
    for file in ["otel-collector/agent.yaml", "otel-collector/gateway.yaml"] {
        let config = yaml(file);
        for (signal, pipeline) in config["service"]["pipelines"].as_mapping().unwrap() {
            let signal = signal.as_str().unwrap().split('/').next().unwrap();
            for section in ["receivers", "processors", "exporters"] {
                for component in strings(&pipeline[section]) {
                    let kind = component.split('/').next().unwrap();
                    let known = COLLECTOR_COMPONENTS
                        .iter()
                        .find(|(s, names, _)| *s == section && names.contains(&kind))
                        .unwrap_or_else(|| {
                            panic!("{file}: {section} type {kind:?} is not a Collector component known here")
                        });
                    assert!(
                        known.2.contains(&signal),
                        "{file}: {kind} does not take {signal} (it takes {:?})",
                        known.2
                    );
                }
            }
        }
        // Profiles are behind this feature gate (service/internal/metadata/generated_feature_gates.go).
        let text = std::fs::read_to_string(repo(file)).unwrap();
        assert!(text.contains("--feature-gates=service.profilesSupport"), "{file} says how to turn profiles on");
    }
}

/// The destination of the Dockerfile's `COPY` of `source`.
fn dockerfile_copy_destination(source: &str) -> String {
    let dockerfile = std::fs::read_to_string(repo("deploy/Dockerfile")).unwrap();
    let line = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix(&format!("COPY {source} ")))
        .unwrap_or_else(|| panic!("deploy/Dockerfile does not copy {source}"));
    line.trim().to_owned()
}

#[test]
fn the_sampler_opt_in_pod_copies_the_library_the_image_ships_and_preloads_the_copy() {
    let image_path = dockerfile_copy_destination("target/release/libmemleak_sampler.so");
    let ds = yaml("deploy/kubernetes/daemonset.yaml");
    let pod_spec = yaml("deploy/sampler/pod-opt-in.yaml");
    let pod = &pod_spec["spec"]["template"]["spec"];
    let init = &pod["initContainers"][0];
    assert_eq!(init["image"], ds["spec"]["template"]["spec"]["containers"][0]["image"], "the exporter's image");
    let command = strings(&init["command"]);
    assert_eq!(command.len(), 3, "{command:?}");
    assert_eq!((command[0].as_str(), command[1].as_str()), ("cp", image_path.as_str()), "copies what the image ships");
    let volume = pod["volumes"][0]["name"].as_str().unwrap();
    assert!(pod["volumes"][0]["emptyDir"].is_mapping());
    let mount_of = |container: &Value| {
        let mount = container["volumeMounts"].as_sequence().unwrap().iter().find(|m| m["name"] == volume).unwrap();
        (mount["mountPath"].as_str().unwrap().to_owned(), mount["readOnly"] == Value::Bool(true))
    };
    let (init_mount, _) = mount_of(init);
    let copied = command[2].strip_prefix(&format!("{init_mount}/")).expect("the copy lands in the shared volume");
    let app = &pod["containers"][0];
    let (app_mount, read_only) = mount_of(app);
    assert!(read_only, "the application cannot change the library");
    let preload = app["env"].as_sequence().unwrap().iter().find(|e| e["name"] == "LD_PRELOAD").unwrap();
    assert_eq!(preload["value"].as_str().unwrap(), format!("{app_mount}/{copied}"), "LD_PRELOAD names the copy");
}

#[test]
fn the_sampler_systemd_drop_in_preloads_the_path_its_install_step_writes() {
    let drop_in = std::fs::read_to_string(repo("deploy/sampler/memleak-sampler.conf")).unwrap();
    let installed = drop_in
        .lines()
        .find_map(|l| l.strip_prefix("#   install -D -m 0644 target/release/libmemleak_sampler.so "))
        .expect("the drop-in says how to install the library");
    assert!(drop_in.lines().any(|l| l == "[Service]"));
    assert!(drop_in.lines().any(|l| l == format!("Environment=LD_PRELOAD={installed}")), "{drop_in}");
}

/// The ports and flags the OTLP path names agree with each other and with the real tools.
#[test]
fn the_otlp_path_names_ports_and_flags_that_exist() {
    let agent = yaml("otel-collector/agent.yaml");
    let gateway = yaml("otel-collector/gateway.yaml");
    // The exporter pushes to the agent's OTLP ports (gRPC 4317, HTTP 4318: the OTLP defaults).
    assert_eq!(agent["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"], "0.0.0.0:4317");
    assert_eq!(agent["receivers"]["otlp"]["protocols"]["http"]["endpoint"], "0.0.0.0:4318");
    assert_flags_exist(
        ["--otlp.endpoint=http://localhost:4317", "--otlp.protocol=grpc"].map(String::from),
        "otel-collector/README.md",
    );
    // The agent forwards to the gateway's gRPC port.
    let forward = agent["exporters"]["otlp/gateway"]["endpoint"].as_str().unwrap();
    let port =
        gateway["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].as_str().unwrap().rsplit(':').next().unwrap();
    assert!(forward.ends_with(&format!(":{port}")), "agent sends to {forward}, the gateway listens on {port}");
    // Prometheus accepts remote write only with this flag, which the Prometheus here knows.
    let remote_write = gateway["exporters"]["prometheusremotewrite"]["endpoint"].as_str().unwrap();
    assert!(remote_write.ends_with(":9090/api/v1/write"), "{remote_write}");
    let readme = std::fs::read_to_string(repo("otel-collector/README.md")).unwrap();
    assert!(readme.contains("--web.enable-remote-write-receiver"));
    if let Some(prometheus) = require_tool("prometheus", "prometheus") {
        let help = std::process::Command::new(prometheus).arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&help.stderr).into_owned() + &String::from_utf8_lossy(&help.stdout);
        assert!(
            help.contains("--web.enable-remote-write-receiver"),
            "this Prometheus lacks the remote-write receiver flag"
        );
    }
    // Loki 3 takes OTLP logs at /otlp (port 3100); Pyroscope takes OTLP profiles on its port 4040.
    assert_eq!(gateway["exporters"]["otlphttp/loki"]["endpoint"], "http://loki:3100/otlp");
    assert_eq!(gateway["exporters"]["otlp/pyroscope"]["endpoint"], "pyroscope:4040");
}
