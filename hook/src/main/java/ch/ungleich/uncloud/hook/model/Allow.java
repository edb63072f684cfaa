package ch.ungleich.uncloud.hook.model;

/**
 * One validated {@code <uc:allow>} of an ingress or egress list.
 *
 * @param protocol what it matches ({@link Protocol#ANY} for every protocol)
 * @param portLo first destination port, 0 when the rule has no {@code port} (then every port)
 * @param portHi last destination port, 0 when the rule has no {@code port}
 * @param peer the remote side ({@code from} for ingress, {@code to} for egress), null for any address
 * @param text the rule as the metadata had it, for messages and comments
 */
public record Allow(Protocol protocol, int portLo, int portHi, IpPrefix peer, String text) {

  /** Whether the rule can match traffic of this family: its protocol's and its peer's. */
  public boolean covers(boolean v6) {
    return protocol.covers(v6) && (peer == null || peer.v6() == v6);
  }

  /** The port range as nft writes it: {@code 22}, {@code 80-81}, {@code 0-65535} for none. */
  public String ports() {
    if (portLo == 0) {
      return "0-65535";
    }
    return portLo == portHi ? String.valueOf(portLo) : portLo + "-" + portHi;
  }
}
