//! The log source of an event (product, services, categories) and the routing index from log
//! sources to the rules that apply to them.
//!
//! A rule sees an event only when every log source key the rule states (`product`, `service`,
//! `category`) is one the event has. An event has at most one product but may have several
//! services and categories: a Sysmon registry value set (EventID 13) is both `registry_set`
//! and `registry_event`, and a syslog line from `sshd` is both service `sshd` and `syslog`.
//! The mapping from events to log sources is documented on [`EventLogSource::of`].

use std::collections::HashMap;

use securewatch_schemas::{Event, FieldValue, SourceKind};

use crate::error::DetectionError;

/// The log source an event belongs to, in Sigma's terms. All names are lower case.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventLogSource {
    /// `windows`, `linux`, ... (`None`: unknown).
    pub product: Option<String>,
    /// Sigma services (`security`, `sysmon`, `sshd`, `syslog`, ...).
    pub services: Vec<String>,
    /// Sigma categories (`process_creation`, `registry_set`, `webserver`, ...).
    pub categories: Vec<String>,
}

/// Where the fields of a Windows event record live, per field-naming flavour.
struct WindowsNames {
    channel: &'static str,
    event_id: &'static str,
    event_type: &'static str,
}

/// Wazuh's `eventchannel` decoder (`data.win.system.*`, lower-camel-case names).
const WAZUH_WINDOWS: WindowsNames = WindowsNames {
    channel: "data.win.system.channel",
    event_id: "data.win.system.eventID",
    event_type: "data.win.eventdata.eventType",
};

/// The tried flavours for events that do not come from Wazuh: evtx_dump-style JSON (SigmaHQ's
/// regression data), flat Windows records (Winlogbeat-to-Logstash / OTRF / Splunk), ECS.
const OTHER_WINDOWS: [WindowsNames; 4] = [
    WindowsNames {
        channel: "Event.System.Channel",
        event_id: "Event.System.EventID",
        event_type: "Event.EventData.EventType",
    },
    WindowsNames { channel: "Channel", event_id: "EventID", event_type: "EventType" },
    WindowsNames { channel: "Channel", event_id: "EventCode", event_type: "EventType" },
    WindowsNames {
        channel: "winlog.channel",
        event_id: "winlog.event_id",
        event_type: "winlog.event_data.EventType",
    },
];

impl EventLogSource {
    /// A log source with a product only.
    pub fn product(product: &str) -> EventLogSource {
        EventLogSource { product: Some(product.to_lowercase()), ..EventLogSource::default() }
    }

    /// Parses `product=windows,service=security,category=process_creation` (each key optional,
    /// `service` and `category` repeatable).
    pub fn parse(text: &str) -> Result<EventLogSource, DetectionError> {
        let mut source = EventLogSource::default();
        let error = |reason: &str| DetectionError::LogSource { text: text.to_string(), reason: reason.to_string() };
        for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| error("expected key=value"))?;
            let value = value.trim().to_lowercase();
            if value.is_empty() {
                return Err(error("empty value"));
            }
            match key.trim() {
                "product" => source.product = Some(value),
                "service" => source.services.push(value),
                "category" => source.categories.push(value),
                _ => return Err(error("keys are product, service and category")),
            }
        }
        Ok(source)
    }

    /// Derives the log source of a normalised event.
    ///
    /// | source | product | services | categories |
    /// |---|---|---|---|
    /// | Wazuh alert with `data.win.system.channel` (eventchannel decoder) | `windows` | from the channel (below) | from the Sysmon / PowerShell event id |
    /// | other Wazuh alert with `predecoder.program_name`, `decoder.name` or a `/var/log` location | `linux` | `syslog`, plus program / decoder names mapped as for syslog | — |
    /// | syslog | `linux` | `syslog`; `auth` for facility auth/authpriv; the app-name (`sshd`, `sudo`, `cron`, `vsftpd`, `clamav` (clamd, freshclam), `guacamole` (guacd), `auditd`) | — |
    /// | HEC, sourcetype `WinEventLog:<channel>` / `XmlWinEventLog:<channel>` (or the same in `source` / a `Channel` field) | `windows` | from the channel | from `EventCode` / `EventID` |
    /// | HEC, sourcetype `linux_secure` / `syslog` / `linux_audit` | `linux` | `auth` + `syslog` / `syslog` / `auditd` | — |
    /// | HEC, sourcetype `access_combined*`, `nginx*`, `apache*` | — | — | `webserver` |
    /// | anything else with Windows record fields (`Event.System.Channel` as in evtx JSON, flat `Channel` + `EventID`, ECS `winlog.channel`) | `windows` | from the channel | from the event id |
    ///
    /// Channels: `Security` → `security`, `System` → `system`, `Application` → `application`,
    /// Sysmon → `sysmon`, PowerShell Operational → `powershell`, `Windows PowerShell` →
    /// `powershell-classic`, TaskScheduler → `taskscheduler`, WMI-Activity → `wmi`, Windows
    /// Defender → `windefend`, and the other names of [`windows_service`]. Sysmon event ids give
    /// the categories of [`sysmon_categories`]. Security 4688 is not mapped to
    /// `process_creation`: its fields (`NewProcessName`, ...) are not Sysmon's.
    pub fn of(event: &Event) -> EventLogSource {
        match event.source.kind {
            SourceKind::Wazuh => wazuh(event),
            SourceKind::Syslog => syslog(event),
            SourceKind::Hec => hec(event).unwrap_or_else(|| generic(event)),
            _ => generic(event),
        }
    }

    fn add_service(&mut self, service: &str) {
        if !self.services.iter().any(|known| known == service) {
            self.services.push(service.to_string());
        }
    }

    fn add_category(&mut self, category: &str) {
        if !self.categories.iter().any(|known| known == category) {
            self.categories.push(category.to_string());
        }
    }
}

fn text<'a>(event: &'a Event, key: &str) -> Option<&'a str> {
    event.fields.get(key).and_then(FieldValue::as_str)
}

fn integer(event: &Event, key: &str) -> Option<i64> {
    match event.fields.get(key)? {
        FieldValue::Int(value) => Some(*value),
        FieldValue::Str(value) => value.trim().parse().ok(),
        _ => None,
    }
}

/// A Windows record described by one naming flavour; `None` when it has no channel.
fn windows_with(event: &Event, names: &WindowsNames) -> Option<EventLogSource> {
    let channel = text(event, names.channel)?;
    let event_id = integer(event, names.event_id);
    Some(windows_source(channel, event_id, text(event, names.event_type)))
}

/// The log source of a Windows record with `channel` and `event_id`.
fn windows_source(channel: &str, event_id: Option<i64>, event_type: Option<&str>) -> EventLogSource {
    let mut source = EventLogSource::product("windows");
    let service = windows_service(channel);
    if let Some(service) = service {
        source.add_service(service);
    }
    if let Some(id) = event_id {
        let categories: &[&str] = match service {
            Some("sysmon") => sysmon_categories(id, event_type),
            Some("powershell") => match id {
                4103 => &["ps_module"],
                4104 => &["ps_script"],
                _ => &[],
            },
            Some("powershell-classic") => match id {
                400 => &["ps_classic_start"],
                600 => &["ps_classic_provider_start"],
                _ => &[],
            },
            _ => &[],
        };
        for category in categories {
            source.add_category(category);
        }
    }
    source
}

/// The Sigma service of a Windows event-log channel (case-insensitive).
pub fn windows_service(channel: &str) -> Option<&'static str> {
    let channel = channel.to_ascii_lowercase();
    let service = match channel.as_str() {
        "security" => "security",
        "system" => "system",
        "application" => "application",
        "microsoft-windows-sysmon/operational" => "sysmon",
        "microsoft-windows-powershell/operational" => "powershell",
        "windows powershell" => "powershell-classic",
        "microsoft-windows-taskscheduler/operational" => "taskscheduler",
        "microsoft-windows-wmi-activity/operational" => "wmi",
        "microsoft-windows-windows defender/operational" => "windefend",
        "microsoft-windows-bits-client/operational" => "bits-client",
        "microsoft-windows-codeintegrity/operational" => "codeintegrity-operational",
        "microsoft-windows-dns-client/operational" => "dns-client",
        "microsoft-windows-windows firewall with advanced security/firewall" => "firewall-as",
        "microsoft-windows-terminalservices-localsessionmanager/operational" => {
            "terminalservices-localsessionmanager"
        }
        "microsoft-windows-ntlm/operational" => "ntlm",
        "microsoft-windows-shell-core/operational" => "shell-core",
        "microsoft-windows-smbclient/security" => "smbclient-security",
        "microsoft-windows-openssh/operational" => "openssh",
        "microsoft-windows-driverframeworks-usermode/operational" => "driver-framework",
        "microsoft-windows-printservice/admin" => "printservice-admin",
        "microsoft-windows-printservice/operational" => "printservice-operational",
        "microsoft-windows-appxdeploymentserver/operational" => "appxdeployment-server",
        "microsoft-windows-appmodel-runtime/admin" => "appmodel-runtime",
        "microsoft-windows-capi2/operational" => "capi2",
        "microsoft-windows-ldap-client/debug" => "ldap_debug",
        _ if channel.starts_with("microsoft-windows-applocker/") => "applocker",
        _ if channel.starts_with("microsoft-windows-security-mitigations/") => {
            "security-mitigations"
        }
        _ => return None,
    };
    Some(service)
}

/// Sigma categories of a Sysmon event id (`event_type` tells registry create from delete).
pub fn sysmon_categories(event_id: i64, event_type: Option<&str>) -> &'static [&'static str] {
    match event_id {
        1 => &["process_creation"],
        2 => &["file_change"],
        3 => &["network_connection"],
        5 => &["process_termination"],
        6 => &["driver_load"],
        7 => &["image_load"],
        8 => &["create_remote_thread"],
        9 => &["raw_access_thread"],
        10 => &["process_access"],
        11 => &["file_event"],
        12 => match event_type {
            Some(kind) if kind.contains("Delete") => &["registry_event", "registry_delete"],
            Some(kind) if kind.contains("Create") => &["registry_event", "registry_add"],
            _ => &["registry_event", "registry_add", "registry_delete"],
        },
        13 => &["registry_event", "registry_set"],
        14 => &["registry_event", "registry_rename"],
        15 => &["create_stream_hash"],
        17 | 18 => &["pipe_created"],
        19..=21 => &["wmi_event"],
        22 => &["dns_query"],
        23 => &["file_delete"],
        24 => &["clipboard_capture"],
        25 => &["process_tampering"],
        26 => &["file_delete", "file_delete_detected"],
        27 => &["file_block_executable"],
        28 => &["file_block_shredding"],
        29 => &["file_executable_detected"],
        _ => &[],
    }
}

/// The Sigma service of a Linux program name (syslog app-name, Wazuh decoder).
fn linux_service(program: &str) -> Option<&'static str> {
    let program = program.to_ascii_lowercase();
    let service = match program.as_str() {
        "sshd" => "sshd",
        "sudo" => "sudo",
        "cron" | "crond" | "anacron" => "cron",
        "vsftpd" => "vsftpd",
        "clamd" | "freshclam" | "clamav" => "clamav",
        "guacd" | "guacamole" => "guacamole",
        "auditd" | "audit" | "auditd-json" => "auditd",
        _ => return None,
    };
    Some(service)
}

fn wazuh(event: &Event) -> EventLogSource {
    if let Some(source) = windows_with(event, &WAZUH_WINDOWS) {
        return source;
    }
    let program = text(event, "predecoder.program_name");
    let decoders = [text(event, "decoder.name"), text(event, "decoder.parent")];
    let from_log_file = text(event, "location").is_some_and(|location| location.starts_with("/var/log"));
    if program.is_none() && decoders.iter().all(Option::is_none) && !from_log_file {
        return EventLogSource::default();
    }
    let mut source = EventLogSource::product("linux");
    source.add_service("syslog");
    for name in std::iter::once(program).chain(decoders).flatten() {
        if let Some(service) = linux_service(name) {
            source.add_service(service);
        }
    }
    source
}

fn syslog(event: &Event) -> EventLogSource {
    let mut source = EventLogSource::product("linux");
    source.add_service("syslog");
    if matches!(text(event, "syslog.facility"), Some("auth" | "authpriv")) {
        source.add_service("auth");
    }
    if let Some(service) = text(event, "appname").and_then(linux_service) {
        source.add_service(service);
    }
    source
}

/// The HEC mapping by sourcetype (`None`: the sourcetype says nothing, try the fields).
fn hec(event: &Event) -> Option<EventLogSource> {
    let sourcetype = event.category.as_deref().or_else(|| text(event, "sourcetype"))?;
    let lower = sourcetype.to_ascii_lowercase();
    let event_id = integer(event, "EventCode").or_else(|| integer(event, "EventID"));
    for prefix in ["xmlwineventlog", "wineventlog"] {
        if let Some(rest) = lower.strip_prefix(prefix) {
            let channel = match rest.strip_prefix(':') {
                Some(_) => Some(&sourcetype[prefix.len() + 1..]),
                None => text(event, "Channel")
                    .or_else(|| text(event, "LogName"))
                    .or_else(|| text(event, "source").and_then(|s| s.split_once(':').map(|(_, c)| c))),
            };
            let mut source = match channel {
                Some(channel) => windows_source(channel, event_id, text(event, "EventType")),
                None => EventLogSource::product("windows"),
            };
            source.product = Some("windows".to_string());
            return Some(source);
        }
    }
    let mut source = EventLogSource::default();
    match lower.as_str() {
        "linux_secure" => {
            source.product = Some("linux".into());
            source.add_service("auth");
            source.add_service("syslog");
        }
        "syslog" => {
            source.product = Some("linux".into());
            source.add_service("syslog");
        }
        "linux_audit" => {
            source.product = Some("linux".into());
            source.add_service("auditd");
        }
        _ if ["access_combined", "nginx", "apache"].iter().any(|p| lower.starts_with(p)) => {
            source.add_category("webserver");
        }
        _ => return None,
    }
    Some(source)
}

fn generic(event: &Event) -> EventLogSource {
    OTHER_WINDOWS.iter().find_map(|names| windows_with(event, names)).unwrap_or_default()
}

/// Interned log source value; 0 means "any" (the rule does not state that key).
type Symbol = u32;
const ANY: Symbol = 0;

/// Which rules apply to which log source: rules are grouped by the (product, category,
/// service) they state, and an event looks up only the groups its own log source can satisfy
/// (at most 2 × (categories + 1) × (services + 1) hash lookups), so the per-event cost does not
/// grow with the number of rules for other log sources. Groups are numbered densely from 0 in
/// the order they first appear, so callers can keep per-group data in a `Vec`.
#[derive(Clone, Debug, Default)]
pub struct RouteIndex {
    symbols: HashMap<String, Symbol>,
    group_of_key: HashMap<[Symbol; 3], usize>,
    members: Vec<Vec<usize>>,
}

impl RouteIndex {
    /// Adds rule number `rule` with its stated log source (lower-cased here).
    pub fn insert(&mut self, rule: usize, product: Option<&str>, category: Option<&str>, service: Option<&str>) {
        let key = [self.intern(product), self.intern(category), self.intern(service)];
        let next = self.members.len();
        let group = *self.group_of_key.entry(key).or_insert(next);
        if group == next {
            self.members.push(Vec::new());
        }
        self.members[group].push(rule);
    }

    fn intern(&mut self, value: Option<&str>) -> Symbol {
        let Some(value) = value else { return ANY };
        let next = Symbol::try_from(self.symbols.len() + 1).unwrap_or(Symbol::MAX);
        *self.symbols.entry(value.to_lowercase()).or_insert(next)
    }

    fn lookup(&self, value: &str) -> Option<Symbol> {
        self.symbols.get(value).copied()
    }

    /// Numbers of the groups whose stated log source `source` satisfies, each once.
    pub fn groups<'a>(&'a self, source: &EventLogSource) -> impl Iterator<Item = usize> + 'a {
        let symbols = |values: &[String]| -> Vec<Symbol> {
            let mut out = vec![ANY];
            out.extend(values.iter().filter_map(|value| self.lookup(value)));
            out.sort_unstable();
            out.dedup();
            out
        };
        let mut products = vec![ANY];
        products.extend(source.product.as_deref().and_then(|product| self.lookup(product)));
        let categories = symbols(&source.categories);
        let services = symbols(&source.services);
        let mut keys = Vec::with_capacity(products.len() * categories.len() * services.len());
        for &product in &products {
            for &category in &categories {
                for &service in &services {
                    keys.push([product, category, service]);
                }
            }
        }
        keys.into_iter().filter_map(|key| self.group_of_key.get(&key).copied())
    }

    /// How many groups there are (group numbers are `0..group_count()`).
    pub fn group_count(&self) -> usize {
        self.members.len()
    }

    /// The rule numbers of group `group`, in insertion order.
    pub fn members(&self, group: usize) -> &[usize] {
        &self.members[group]
    }

    /// Rule numbers that apply to `source`, each once, in no particular order.
    pub fn candidates<'a>(&'a self, source: &EventLogSource) -> impl Iterator<Item = usize> + 'a {
        self.groups(source).flat_map(|group| self.members[group].iter().copied())
    }

    /// All rule numbers (routing off).
    pub fn all(&self) -> impl Iterator<Item = usize> + '_ {
        self.members.iter().flatten().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use securewatch_schemas::{EventId, Fields, Severity, Source};

    fn event(kind: SourceKind, category: Option<&str>, fields: &[(&str, FieldValue)]) -> Event {
        let mut map = Fields::new();
        for (key, value) in fields {
            map.insert(key.to_string(), value.clone());
        }
        Event {
            tenant: Default::default(),
            id: EventId(1),
            time: Utc::now(),
            received: Utc::now(),
            source: Source { kind, name: "test".into(), peer: None },
            host: None,
            severity: Severity::Informational,
            category: category.map(str::to_string),
            message: String::new(),
            fields: map,
            raw: None,
        }
    }

    #[test]
    fn wazuh_sysmon_alert_is_windows_sysmon_process_creation() {
        let event = event(
            SourceKind::Wazuh,
            Some("windows"),
            &[
                ("data.win.system.channel", "Microsoft-Windows-Sysmon/Operational".into()),
                ("data.win.system.eventID", "1".into()),
            ],
        );
        let source = EventLogSource::of(&event);
        assert_eq!(source.product.as_deref(), Some("windows"));
        assert_eq!(source.services, ["sysmon"]);
        assert_eq!(source.categories, ["process_creation"]);
    }

    #[test]
    fn wazuh_sshd_alert_is_linux_sshd_and_syslog() {
        let event = event(
            SourceKind::Wazuh,
            Some("syslog"),
            &[("decoder.name", "sshd".into()), ("location", "/var/log/auth.log".into())],
        );
        let source = EventLogSource::of(&event);
        assert_eq!(source.product.as_deref(), Some("linux"));
        assert_eq!(source.services, ["syslog", "sshd"]);
    }

    #[test]
    fn wazuh_alert_without_markers_has_no_log_source() {
        let event = event(SourceKind::Wazuh, None, &[("rule.id", "510".into())]);
        assert_eq!(EventLogSource::of(&event), EventLogSource::default());
    }

    #[test]
    fn syslog_services_come_from_facility_and_app_name() {
        let event = event(
            SourceKind::Syslog,
            Some("authpriv"),
            &[("syslog.facility", "authpriv".into()), ("appname", "sudo".into())],
        );
        let source = EventLogSource::of(&event);
        assert_eq!(source.product.as_deref(), Some("linux"));
        assert_eq!(source.services, ["syslog", "auth", "sudo"]);
    }

    #[test]
    fn hec_sourcetypes_map_to_windows_channels_and_linux_services() {
        let sysmon = event(
            SourceKind::Hec,
            Some("XmlWinEventLog:Microsoft-Windows-Sysmon/Operational"),
            &[("EventCode", FieldValue::Int(13))],
        );
        let source = EventLogSource::of(&sysmon);
        assert_eq!(source.product.as_deref(), Some("windows"));
        assert_eq!(source.services, ["sysmon"]);
        assert_eq!(source.categories, ["registry_event", "registry_set"]);

        let security = event(SourceKind::Hec, Some("WinEventLog"), &[("source", "WinEventLog:Security".into())]);
        assert_eq!(EventLogSource::of(&security).services, ["security"]);

        let secure = event(SourceKind::Hec, Some("linux_secure"), &[]);
        assert_eq!(EventLogSource::of(&secure).services, ["auth", "syslog"]);

        let unknown = event(SourceKind::Hec, Some("my_app"), &[]);
        assert_eq!(EventLogSource::of(&unknown), EventLogSource::default());
    }

    #[test]
    fn evtx_json_records_are_recognised_by_their_fields() {
        let event = event(
            SourceKind::File,
            None,
            &[
                ("Event.System.Channel", "Microsoft-Windows-Sysmon/Operational".into()),
                ("Event.System.EventID", FieldValue::Int(12)),
                ("Event.EventData.EventType", "DeleteKey".into()),
            ],
        );
        let source = EventLogSource::of(&event);
        assert_eq!(source.categories, ["registry_event", "registry_delete"]);
    }

    #[test]
    fn parse_text_form() {
        let source = EventLogSource::parse("product=Windows, category=process_creation,service=sysmon").unwrap();
        assert_eq!(source.product.as_deref(), Some("windows"));
        assert_eq!(source.categories, ["process_creation"]);
        assert_eq!(source.services, ["sysmon"]);
        assert!(EventLogSource::parse("vendor=x").is_err());
        assert!(EventLogSource::parse("product").is_err());
    }

    #[test]
    fn index_returns_only_rules_whose_stated_keys_the_event_has() {
        let mut index = RouteIndex::default();
        index.insert(0, Some("windows"), Some("process_creation"), None);
        index.insert(1, Some("windows"), None, Some("security"));
        index.insert(2, None, None, None);
        index.insert(3, Some("linux"), None, None);
        index.insert(4, Some("windows"), Some("registry_set"), None);
        index.insert(5, None, Some("process_creation"), None);
        let source = EventLogSource {
            product: Some("windows".into()),
            services: vec!["sysmon".into()],
            categories: vec!["process_creation".into()],
        };
        let mut rules: Vec<usize> = index.candidates(&source).collect();
        rules.sort();
        assert_eq!(rules, [0, 2, 5]);
        let mut none: Vec<usize> = index.candidates(&EventLogSource::default()).collect();
        none.sort();
        assert_eq!(none, [2]);
        assert_eq!(index.all().count(), 6);
    }
}
