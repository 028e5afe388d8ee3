//! The ports of merged pods (part of `runtime`): a tenant's merged pods reach each other only on
//! the ports each declares (`pod.run`'s `ports`).
//!
//! Docker 20.10 has no per-port filter between containers of one network: `--expose` is
//! metadata, and `--link` opens ports only on the default bridge. So a tenant's internal network
//! is made with inter-container traffic dropped (`com.docker.network.bridge.enable_icc=false`:
//! the engine adds `-i <bridge> -o <bridge> -j DROP` to the FORWARD chain, which bridged traffic
//! crosses with `br_netfilter`), and each declared port of a running pod is let through by two
//! rules in the `DOCKER-USER` chain, which the engine jumps to before its own and never rewrites:
//! packets to the pod's address and port on its bridge, and the replies from that address and
//! port of connections already established (never a connection the pod opens from it). Every
//! rule carries the comment `orbitdock-pod:<container>`: the rules of a pod go when it ends, and
//! at start those of containers that are gone. Without a rule nothing passes, so a pod that
//! declares no port is reached by no one, and one whose rules could not be written fails.
//!
//! The host itself is reached from a tenant network through the INPUT chain, which the engine
//! leaves open (an internal network only has no route *out*): so two rules there, labelled
//! `orbitdock-net:<network>`, let a network's containers reach the host only at the network's
//! gateway on the port the agent serves them there (`crate::telemetry`), and drop everything
//! else they send the host (its SSH, anything listening on all addresses). They go with the
//! network.
//!
//! The agent runs `iptables` (the host's, as the engine does), which needs root, as the agent
//! has anyway to give volumes their tenants' owners.

use wire::PodPort;

use super::{CALL_TIMEOUT, RtResult, RuntimeError};

/// The chain the rules go in.
const CHAIN: &str = "DOCKER-USER";
/// The start of the comment that labels a pod's rules.
const COMMENT: &str = "orbitdock-pod:";

/// The bridge of a network made without a bridge name, from its id (at least 12 characters):
/// `br-` and the first 12.
pub(crate) fn bridge(network_id: &str) -> String {
    format!("br-{}", network_id.get(..12).unwrap_or(network_id))
}

/// The network option that drops traffic between the network's containers.
pub(crate) const NO_ICC: (&str, &str) = ("com.docker.network.bridge.enable_icc", "false");

/// The rules (what follows `-I DOCKER-USER`) that let the containers on `bridge` reach the
/// container `name`, at `ip`, on `port`: the way in, and the replies of established connections.
pub(crate) fn port_rules(bridge: &str, ip: &str, name: &str, port: PodPort) -> [Vec<String>; 2] {
    let (proto, number) = (port.protocol.as_str(), port.container.to_string());
    let comment = format!("{COMMENT}{name}");
    let on_bridge = |rest: &[&str]| -> Vec<String> {
        ["-i", bridge, "-o", bridge, "-p", proto]
            .iter()
            .chain(rest)
            .chain(&["-m", "comment", "--comment", &comment, "-j", "ACCEPT"])
            .map(|s| s.to_string())
            .collect()
    };
    let address = format!("{ip}/32");
    [
        on_bridge(&["-d", &address, "--dport", &number]),
        on_bridge(&[
            "-s",
            &address,
            "--sport",
            &number,
            "-m",
            "conntrack",
            "--ctstate",
            "ESTABLISHED",
        ]),
    ]
}

/// The pods' rules in a listing of the chain (`iptables -S DOCKER-USER`): for each, the
/// container it is for and its arguments after the chain's name.
pub(crate) fn listed_rules(listing: &str) -> Vec<(String, Vec<String>)> {
    labelled_rules(listing, CHAIN, COMMENT)
}

/// The rules of `chain` in its listing whose comment starts with `prefix`: for each, the rest
/// of its comment and its arguments after the chain's name. (iptables-nft quotes every
/// comment; ours hold no space, so their quotes are all there is to undo.)
fn labelled_rules(listing: &str, chain: &str, prefix: &str) -> Vec<(String, Vec<String>)> {
    listing
        .lines()
        .filter_map(|line| {
            let args: Vec<&str> = line
                .split_whitespace()
                .map(|a| a.trim_matches('"'))
                .collect();
            let ["-A", named, rest @ ..] = args.as_slice() else {
                return None;
            };
            if *named != chain {
                return None;
            }
            let name = rest.iter().find_map(|a| a.strip_prefix(prefix))?;
            Some((
                name.to_string(),
                rest.iter().map(|s| s.to_string()).collect(),
            ))
        })
        .collect()
}

/// Runs `iptables -w <args>`; its output, or why it failed.
async fn iptables(args: &[String]) -> RtResult<String> {
    let run = tokio::process::Command::new("iptables")
        .arg("-w")
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(CALL_TIMEOUT, run)
        .await
        .map_err(|_| {
            RuntimeError::failed(format!("iptables did not answer within {CALL_TIMEOUT:?}"))
        })?
        .map_err(|e| RuntimeError::failed(format!("cannot run iptables: {e}")))?;
    if !out.status.success() {
        return Err(RuntimeError::failed(format!(
            "iptables {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Lets the peers on `bridge` reach the container `name` at `ip` on `ports`: each rule inserted
/// unless it is there already (a pod taken up after a restart).
pub(crate) async fn open(bridge: &str, ip: &str, name: &str, ports: &[PodPort]) -> RtResult<()> {
    let rules: Vec<Vec<String>> = ports
        .iter()
        .flat_map(|port| port_rules(bridge, ip, name, *port))
        .collect();
    insert_missing(CHAIN, rules).await
}

/// The start of the comment that labels a network's rules to the host.
const NET_COMMENT: &str = "orbitdock-net:";
/// The chain of what is sent to the host itself.
const INPUT: &str = "INPUT";

/// The rules (what follows `-I INPUT`, in the order to insert them, so that the first is
/// checked last) that let the containers on `bridge` reach the host at `gateway` on TCP `port`
/// and nowhere else.
pub(crate) fn host_rules(
    bridge: &str,
    gateway: &str,
    port: u16,
    network: &str,
) -> [Vec<String>; 2] {
    let comment = format!("{NET_COMMENT}{network}");
    let rule = |middle: &[&str], verdict: &str| -> Vec<String> {
        ["-i", bridge]
            .iter()
            .chain(middle)
            .chain(&["-m", "comment", "--comment", &comment, "-j", verdict])
            .map(|s| s.to_string())
            .collect()
    };
    let (address, port) = (format!("{gateway}/32"), port.to_string());
    [
        rule(&[], "DROP"),
        rule(&["-p", "tcp", "-d", &address, "--dport", &port], "ACCEPT"),
    ]
}

/// Lets the containers on `bridge` (the network `network`) reach the host only at `gateway`
/// on TCP `port`: each rule inserted unless it is there already.
pub(crate) async fn open_host(
    bridge: &str,
    gateway: &str,
    port: u16,
    network: &str,
) -> RtResult<()> {
    insert_missing(INPUT, host_rules(bridge, gateway, port, network)).await
}

/// Deletes the rules of the network `network` to the host; none is not an error.
pub(crate) async fn close_host(network: &str) -> RtResult<()> {
    delete_labelled(INPUT, NET_COMMENT, network).await
}

/// Deletes the rules of `chain` labelled `prefix` + `holder`.
async fn delete_labelled(chain: &str, prefix: &str, holder: &str) -> RtResult<()> {
    let listing = iptables(&["-S".into(), chain.into()]).await?;
    for (labelled, rule) in labelled_rules(&listing, chain, prefix) {
        if labelled == holder {
            let delete: Vec<String> = ["-D", chain]
                .iter()
                .map(|s| s.to_string())
                .chain(rule)
                .collect();
            iptables(&delete).await?;
        }
    }
    Ok(())
}

/// Inserts at the top of `chain` each of `rules` not there already, in order.
async fn insert_missing(chain: &str, rules: impl IntoIterator<Item = Vec<String>>) -> RtResult<()> {
    for rule in rules {
        let with = |verb: &str| -> Vec<String> {
            [verb, chain]
                .iter()
                .map(|s| s.to_string())
                .chain(rule.clone())
                .collect()
        };
        if iptables(&with("-C")).await.is_ok() {
            continue;
        }
        iptables(&with("-I")).await?;
    }
    Ok(())
}

/// The containers that have rules.
pub(crate) async fn holders() -> RtResult<Vec<String>> {
    let listing = iptables(&["-S".into(), CHAIN.into()]).await?;
    let mut names: Vec<String> = listed_rules(&listing).into_iter().map(|(n, _)| n).collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Deletes the rules of the container `name`; none is not an error.
pub(crate) async fn close(name: &str) -> RtResult<()> {
    delete_labelled(CHAIN, COMMENT, name).await
}

#[cfg(test)]
mod tests {
    use wire::PortProtocol;

    use super::*;

    #[test]
    fn a_port_opens_its_way_in_and_its_replies_only() {
        let [to, from] = port_rules(
            "br-0123456789ab",
            "172.18.0.2",
            "orbitdock-acme-srv-1234abcd",
            PodPort {
                container: 8080,
                protocol: PortProtocol::Udp,
            },
        );
        assert_eq!(
            to.join(" "),
            "-i br-0123456789ab -o br-0123456789ab -p udp -d 172.18.0.2/32 --dport 8080 \
             -m comment --comment orbitdock-pod:orbitdock-acme-srv-1234abcd -j ACCEPT"
        );
        assert_eq!(
            from.join(" "),
            "-i br-0123456789ab -o br-0123456789ab -p udp -s 172.18.0.2/32 --sport 8080 \
             -m conntrack --ctstate ESTABLISHED \
             -m comment --comment orbitdock-pod:orbitdock-acme-srv-1234abcd -j ACCEPT"
        );
    }

    #[test]
    fn a_network_reaches_the_host_at_its_gateway_port_only() {
        let [drop, accept] = host_rules("br-0123456789ab", "172.18.0.1", 80, "orbitdock-acme");
        // Inserted in this order: the ACCEPT ends above the DROP.
        assert_eq!(
            drop.join(" "),
            "-i br-0123456789ab -m comment --comment orbitdock-net:orbitdock-acme -j DROP"
        );
        assert_eq!(
            accept.join(" "),
            "-i br-0123456789ab -p tcp -d 172.18.0.1/32 --dport 80 \
             -m comment --comment orbitdock-net:orbitdock-acme -j ACCEPT"
        );
        let listing = "-P INPUT ACCEPT\n\
            -A INPUT -d 172.18.0.1/32 -i br-0123456789ab -p tcp -m tcp --dport 80 -m comment --comment \"orbitdock-net:orbitdock-acme\" -j ACCEPT\n\
            -A INPUT -i br-0123456789ab -m comment --comment \"orbitdock-net:orbitdock-acme\" -j DROP\n";
        let found = labelled_rules(listing, INPUT, NET_COMMENT);
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|(n, _)| n == "orbitdock-acme"));
        assert!(listed_rules(listing).is_empty(), "not a pod's");
    }

    #[test]
    fn the_pods_rules_are_found_in_the_listing() {
        let listing = "-N DOCKER-USER\n\
            -A DOCKER-USER -s 10.0.0.0/8 -j DROP\n\
            -A DOCKER-USER -d 172.18.0.2/32 -i br-1 -o br-1 -p tcp -m tcp --dport 80 -m comment --comment \"orbitdock-pod:a\" -j ACCEPT\n\
            -A DOCKER-USER -j RETURN\n";
        assert_eq!(
            listed_rules(listing),
            [(
                "a".to_string(),
                "-d 172.18.0.2/32 -i br-1 -o br-1 -p tcp -m tcp --dport 80 -m comment --comment orbitdock-pod:a -j ACCEPT"
                    .split(' ')
                    .map(String::from)
                    .collect::<Vec<_>>()
            )]
        );
    }
}
