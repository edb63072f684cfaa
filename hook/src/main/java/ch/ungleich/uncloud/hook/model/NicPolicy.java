package ch.ungleich.uncloud.hook.model;

import java.util.List;

/**
 * What one NIC may send.
 *
 * @param tap the host-side interface ({@code <target dev>}), null while the domain is not running
 * @param name how logs and errors name the NIC: libvirt's alias ({@code net0}) or {@code nicN}
 * @param type libvirt's interface type ({@code bridge}, {@code network}, {@code direct}, ...)
 * @param filterable true for types whose tap sits on a Linux bridge (bridge, network)
 * @param mode how it is filtered
 * @param reason where the mode comes from: {@code metadata}, {@code trusted}, {@code unlisted=deny}, ...
 * @param ipv4 allowed IPv4 sources
 * @param ipv6 allowed IPv6 sources: listed addresses and prefixes plus the NIC's link-local ones
 * @param dhcpClient whether a DHCP discover from 0.0.0.0:68 to 255.255.255.255:67 may pass
 * @param rules the stateful ingress/egress rules ({@link StatefulRules#NONE} when there are none)
 */
public record NicPolicy(
    String tap,
    Mac mac,
    String name,
    String type,
    boolean filterable,
    Mode mode,
    String reason,
    AddressSet ipv4,
    AddressSet ipv6,
    boolean dhcpClient,
    StatefulRules rules) {

  /** Without stateful rules (what every NIC had before issue 17). */
  public NicPolicy(String tap, Mac mac, String name, String type, boolean filterable, Mode mode, String reason,
      AddressSet ipv4, AddressSet ipv6, boolean dhcpClient) {
    this(tap, mac, name, type, filterable, mode, reason, ipv4, ipv6, dhcpClient, StatefulRules.NONE);
  }

  /** The same NIC with another tap name. */
  public NicPolicy withTap(String newTap) {
    return new NicPolicy(newTap, mac, name, type, filterable, mode, reason, ipv4, ipv6, dhcpClient, rules);
  }

  /**
   * Whether the delivery filter applies: a filtered NIC (not {@link Mode#OPEN}) on a bridge receives
   * only frames to its own MAC, broadcast or multicast.
   */
  public boolean delivered() {
    return hasChain() && mode != Mode.OPEN;
  }

  /**
   * Whether this NIC gets a chain and a map element of its own: a type on a Linux bridge and a tap.
   * An {@link Mode#OPEN} NIC gets one too (a lone accept), so the vm_taps guard knows it is a VM's.
   */
  public boolean hasChain() {
    return filterable && tap != null;
  }
}
