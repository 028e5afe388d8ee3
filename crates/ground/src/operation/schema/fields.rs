//! A pod.run's `env` and `ports`: their shapes, names and values.

use super::*;

impl Cx<'_> {
    pub(super) fn env(&mut self, who: &Who, node: &Node<'_>) -> Option<Vec<(String, String)>> {
        let mut out = Vec::new();
        let mut ok = true;
        match &untag(node).data {
            YamlData::Mapping(map) => {
                for (k, v) in map.iter() {
                    let (Some(name), Some(value)) = (self.env_name(who, k), self.env_value(who, v))
                    else {
                        ok = false;
                        continue;
                    };
                    out.push((name, value));
                }
            }
            YamlData::Sequence(items) => {
                for item in items {
                    let Some(mut f) = self.fields(who, item, "an 'env' item") else {
                        ok = false;
                        continue;
                    };
                    let name = f.take("name");
                    let value = f.take_raw("value");
                    self.finish(who, &f, &["name", "value"]);
                    let Some(name_node) = name else {
                        self.diag(who, pos(item), "an 'env' item is missing 'name'".into());
                        ok = false;
                        continue;
                    };
                    let name = self.env_name(who, name_node);
                    let value = match value {
                        Some(v) => self.env_value(who, v),
                        None => Some(String::new()),
                    };
                    match (name, value) {
                        (Some(n), Some(v)) => out.push((n, v)),
                        _ => ok = false,
                    }
                }
            }
            _ => {
                self.diag(
                    who,
                    pos(node),
                    format!(
                        "field 'env' must be a mapping or a list of {{name, value}}, not {}",
                        kind(node)
                    ),
                );
                return None;
            }
        }
        ok.then_some(out)
    }

    fn env_name(&mut self, who: &Who, node: &Node<'_>) -> Option<String> {
        self.checked(who, "env", node, |s| {
            let mut chars = s.chars();
            let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && s.len() <= 256 {
                Ok(s.to_string())
            } else {
                Err(format!("has a bad variable name '{s}' (letters, digits and _; not starting with a digit)"))
            }
        })
    }

    fn env_value(&mut self, who: &Who, node: &Node<'_>) -> Option<String> {
        if is_null(node) {
            return Some(String::new());
        }
        self.string(who, "env", node)
    }

    /// `ports`: numbers (TCP) or `{container, host, protocol}`; a port named twice counts once.
    pub(super) fn ports(&mut self, who: &Who, node: &Node<'_>) -> Option<Vec<wire::PodPort>> {
        let YamlData::Sequence(items) = &untag(node).data else {
            self.diag(
                who,
                pos(node),
                format!("field 'ports' must be a list, not {}", kind(node)),
            );
            return None;
        };
        let mut ports = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items {
            let port = if let YamlData::Mapping(_) = &untag(item).data {
                let Some(mut f) = self.fields(who, item, "a 'ports' item") else {
                    ok = false;
                    continue;
                };
                let container = match f.take("container") {
                    Some(c) => self.integer(who, "container", c, (1, 65535)),
                    None => {
                        self.diag(
                            who,
                            pos(item),
                            "a 'ports' item is missing 'container'".into(),
                        );
                        None
                    }
                };
                if let Some(h) = f.take("host") {
                    // Read, then dropped: nothing of a pod is published on the host.
                    self.integer(who, "host", h, (1, 65535));
                }
                let protocol = match f.take("protocol") {
                    Some(p) => self.checked(who, "protocol", p, |s| {
                        match s.to_ascii_uppercase().as_str() {
                            "TCP" => Ok(wire::PortProtocol::Tcp),
                            "UDP" => Ok(wire::PortProtocol::Udp),
                            _ => Err("must be TCP or UDP".to_string()),
                        }
                    }),
                    None => Some(wire::PortProtocol::Tcp),
                };
                self.finish(who, &f, &["container", "host", "protocol"]);
                container.zip(protocol)
            } else {
                self.integer(who, "ports", item, (1, 65535))
                    .map(|c| (c, wire::PortProtocol::Tcp))
            };
            match port {
                Some((container, protocol)) => {
                    let port = wire::PodPort {
                        container: container as u16,
                        protocol,
                    };
                    if !ports.contains(&port) {
                        ports.push(port);
                    }
                }
                None => ok = false,
            }
        }
        ok.then_some(ports)
    }
}
