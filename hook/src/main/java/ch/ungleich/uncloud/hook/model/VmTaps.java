package ch.ungleich.uncloud.hook.model;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

/**
 * Host setting {@code vm_taps}: which bridge ports are VM taps, as nft interface-name patterns
 * ({@code vnet*}: libvirt's generated names; an exact name, or a prefix with one trailing {@code *}).
 * A VM tap without a map element (a hot-plugged NIC, a NIC before its rules, any failure in between)
 * is dropped by our table instead of forwarded: fail closed. Uplinks, VXLAN and the host's own
 * ports match no pattern and are never touched. {@code none}: no guard.
 *
 * <p>Refused: a bare {@code *}, a character outside {@code [A-Za-z0-9_.:-]} (the pattern is written
 * into an nft string), a {@code *} anywhere but at the end, more than 15 characters (IFNAMSIZ), and
 * any pattern that matches a name an uplink, bridge, bond, VLAN, VXLAN, veth or the loopback
 * commonly has: a guard that drops the host's own ports would cut the host off.
 *
 * @param patterns the patterns in the order written; empty when the guard is off
 */
public record VmTaps(List<String> patterns) {
  /** libvirt names the taps it creates vnet0, vnet1, ... (a {@code <target dev>} starting with vnet is renamed). */
  public static final String DEFAULT = "vnet*";

  private static final Pattern ONE = Pattern.compile("[A-Za-z0-9_.:-]{1,15}\\*?");

  /** Names the host's own ports commonly have: a pattern matching any of them is refused. */
  static final List<String> UPLINK_NAMES =
      List.of("eth0", "eth1", "eno1", "ens3", "ens18", "enp3s0", "enp0s31f6", "enx001122334455", "em1", "p1p1",
          "wlan0", "wlp2s0", "wwan0", "br0", "bridge0", "virbr0", "vmbr0", "bond0", "team0", "vlan10", "eth0.10",
          "vxlan0", "vxlan100", "geneve0", "gre0", "veth0", "vethab12cd", "lo", "docker0", "tun0", "wg0",
          "ib0", "usb0", "dummy0");

  public static VmTaps none() {
    return new VmTaps(List.of());
  }

  public VmTaps {
    patterns = List.copyOf(patterns);
  }

  /**
   * Parses the setting's value: comma-separated patterns, or {@code none}.
   *
   * @throws IllegalArgumentException with one line saying what is wrong
   */
  public static VmTaps parse(String value) {
    String v = value.strip();
    if (v.equals("none")) {
      return none();
    }
    List<String> out = new ArrayList<>();
    for (String raw : v.split(",", -1)) {
      String p = raw.strip();
      if (p.isEmpty()) {
        throw new IllegalArgumentException("empty pattern in '" + value + "' (comma-separated patterns, or none)");
      }
      if (p.equals("*")) {
        throw new IllegalArgumentException("'*' would drop every bridge port without rules, uplinks too");
      }
      if (!ONE.matcher(p).matches()) {
        throw new IllegalArgumentException("'" + p + "' is not an interface name or prefix* (at most 15 of"
            + " A-Z a-z 0-9 _ . : -, one trailing *)");
      }
      for (String uplink : UPLINK_NAMES) {
        if (matches(p, uplink)) {
          throw new IllegalArgumentException("'" + p + "' also matches '" + uplink + "', a name uplinks, bridges"
              + " and the host's own ports have: name the VM taps more precisely (default " + DEFAULT + ")");
        }
      }
      if (!out.contains(p)) {
        out.add(p);
      }
    }
    return new VmTaps(out);
  }

  public boolean isOff() {
    return patterns.isEmpty();
  }

  /** Whether the interface name matches one of the patterns. */
  public boolean matches(String ifname) {
    return patterns.stream().anyMatch(p -> matches(p, ifname));
  }

  /** nft's wildcard: {@code vnet*} matches every name starting with {@code vnet}, else the exact name. */
  public static boolean matches(String pattern, String ifname) {
    return pattern.endsWith("*")
        ? ifname.startsWith(pattern.substring(0, pattern.length() - 1))
        : ifname.equals(pattern);
  }

  /** The setting as written back: {@code vnet*, tap-*} or {@code none}. */
  public String text() {
    return isOff() ? "none" : String.join(", ", patterns);
  }

  @Override
  public String toString() {
    return text();
  }
}
