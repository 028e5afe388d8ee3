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
//! The agent runs `iptables` (the host's, as the engine does), which needs root, as the agent
//! has anyway to give volumes their tenants' owners.

use wire::PodPort;

use super::{CALL_TIMEOUT, RtResult, RuntimeError};

/// The chain the rules go in.
const CHAIN: &str = "DOCKER-USER";
/// The start of the comment that labels a pod's rules.
const COMMENT: &str = "orbitdock-pod:";

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
/// container it is for and its arguments after the chain's name. (iptables-nft quotes every
/// comment; the pods' comments hold no space, so their quotes are all there is to undo.)
pub(crate) fn listed_rules(listing: &str) -> Vec<(String, Vec<String>)> {
    listing
        .lines()
        .filter_map(|line| {
            let args: Vec<&str> = line
                .split_whitespace()
                .map(|a| a.trim_matches('"'))
                .collect();
            let ["-A", CHAIN, rest @ ..] = args.as_slice() else {
                return None;
            };
            let name = rest.iter().find_map(|a| a.strip_prefix(COMMENT))?;
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
    for port in ports {
        for rule in port_rules(bridge, ip, name, *port) {
            let check: Vec<String> = ["-C", CHAIN]
                .iter()
                .map(|s| s.to_string())
                .chain(rule.clone())
                .collect();
            if iptables(&check).await.is_ok() {
                continue;
            }
            let insert: Vec<String> = ["-I", CHAIN]
                .iter()
                .map(|s| s.to_string())
                .chain(rule)
                .collect();
            iptables(&insert).await?;
        }
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
    let listing = iptables(&["-S".into(), CHAIN.into()]).await?;
    for (holder, rule) in listed_rules(&listing) {
        if holder == name {
            let delete: Vec<String> = ["-D", CHAIN]
                .iter()
                .map(|s| s.to_string())
                .chain(rule)
                .collect();
            iptables(&delete).await?;
        }
    }
    Ok(())
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
