package ch.ungleich.uncloud.hook.nwfilter;

import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.model.AddressSet;
import ch.ungleich.uncloud.hook.model.Allow;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.model.IpPrefix;
import ch.ungleich.uncloud.hook.model.Mode;
import ch.ungleich.uncloud.hook.model.NicPolicy;
import ch.ungleich.uncloud.hook.model.Protocol;
import ch.ungleich.uncloud.hook.model.StatefulRules;
import ch.ungleich.uncloud.libvirtxml.domain.Domain;
import ch.ungleich.uncloud.libvirtxml.domain.Interface;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.List;

/**
 * The nwfilter backend, pure: which {@code <filterref>} each NIC must carry for its policy, and what
 * has to change in a domain XML to get there. libvirt itself instantiates the filters (the hook never
 * calls libvirt); {@code uncloud-hook sync} writes the filterrefs, the hook's {@code migrate}/{@code
 * restore} rewrite them and its {@code prepare} refuses a domain whose filterrefs disagree.
 *
 * <p>Parameters of our filters (see {@code nwfilter-templates/}): {@code MAC}; {@code IPV4} with
 * {@code IPV4_PREFIX} and {@code IPV6} with {@code IPV6_PREFIX}, paired lists ({@code IPV4[i]/
 * IPV4_PREFIX[i]}, nwfilter's {@code $IPV4[@1]}/{@code $IPV4_PREFIX[@1]}). A value may not contain
 * {@code /} (libvirt's variable value syntax), hence the separate prefix lists. The metadata's merged
 * ranges are cut into the fewest CIDR prefixes. nwfilter has no empty list, so a NIC without IPv4
 * gets {@link #NO_IPV4}, which the filter makes inert (it drops every 0.0.0.0 source it has not
 * accepted as a DHCP discover before).
 *
 * <p>A NIC with {@code uc:ingress} (or under {@code ingress = deny}) and/or {@code uc:egress} gets the
 * same filter with {@code -in}, {@code -out} or {@code -inout} appended, which adds {@code
 * uncloud-ingress} / {@code uncloud-egress}: their allows as paired lists per protocol and family,
 * {@code IN_TCP4} (peer address), {@code IN_TCP4_PREFIX}, {@code IN_TCP4_PORT}, {@code
 * IN_TCP4_PORTEND}; the same for {@code UDP4}, {@code TCP6}, {@code UDP6}; {@code IN_ICMP4}, {@code
 * IN_ICMP6}, {@code IN_ANY4}, {@code IN_ANY6} with peer only; {@code OUT_} for egress. An empty list
 * is the placeholder {@link #NO_ALLOW4}/32 or {@link #NO_ALLOW6}/128 (ports 0-65535), which those
 * filters make inert by dropping every packet from (ingress) or to (egress) that address first.
 */
public final class NwfilterBackend {
  /** Filtered NIC, host setting {@code dhcp_client = yes}. */
  public static final String CLEAN_TRAFFIC = "uncloud-clean-traffic";
  /** Filtered NIC without the DHCPv4 discover exception. */
  public static final String CLEAN_TRAFFIC_NO_DHCP = "uncloud-clean-traffic-no-dhcp";
  /** NIC without metadata on a host with {@code unlisted = mac-only}. */
  public static final String MAC_ONLY = "uncloud-mac-only";
  /** The placeholder address of a NIC without IPv4: 0.0.0.0/32. */
  public static final String NO_IPV4 = "0.0.0.0";
  /**
   * The placeholder of an empty allow list, IPv4: 224.0.0.0/32, reserved (RFC 5771), never a source and
   * never a group; uncloud-ingress drops every packet from it and uncloud-egress every packet to it.
   */
  public static final String NO_ALLOW4 = "224.0.0.0";
  /** The same for IPv6: ff00::/128, a reserved multicast address (RFC 4291). */
  public static final String NO_ALLOW6 = "ff00::";

  private NwfilterBackend() {}

  /** The filterref a NIC must carry; null when it must carry none of ours (not filtered, or not on a bridge). */
  public static FilterRef expected(NicPolicy nic) {
    if (!nic.filterable() || nic.mode() == Mode.OPEN) {
      return null;
    }
    List<FilterRef.Param> p = new ArrayList<>();
    p.add(new FilterRef.Param("MAC", nic.mac().text()));
    if (nic.mode() == Mode.MAC_ONLY) {
      return new FilterRef(MAC_ONLY, p);
    }
    List<IpPrefix> v4 = cidrs(nic.ipv4());
    if (v4.isEmpty()) {
      p.add(new FilterRef.Param("IPV4", NO_IPV4));
      p.add(new FilterRef.Param("IPV4_PREFIX", "32"));
    }
    for (IpPrefix x : v4) {
      p.add(new FilterRef.Param("IPV4", x.address()));
      p.add(new FilterRef.Param("IPV4_PREFIX", Integer.toString(x.length())));
    }
    List<IpPrefix> v6 = cidrs(nic.ipv6());
    if (v6.isEmpty()) {
      // PolicyBuilder always adds a link-local address or fe80::/10; an empty set is a bug
      throw new IllegalStateException(nic.name() + ": no IPv6 source at all, not even link-local");
    }
    for (IpPrefix x : v6) {
      p.add(new FilterRef.Param("IPV6", x.address()));
      p.add(new FilterRef.Param("IPV6_PREFIX", Integer.toString(x.length())));
    }
    StatefulRules r = nic.rules();
    if (r.ingress()) {
      allowParams(p, "IN_", r.in());
    }
    if (r.egress()) {
      allowParams(p, "OUT_", r.out());
    }
    return new FilterRef(filterName(nic.dhcpClient(), r), p);
  }

  /**
   * The root filter: {@link #CLEAN_TRAFFIC} or {@link #CLEAN_TRAFFIC_NO_DHCP}, with {@code -in},
   * {@code -out} or {@code -inout} when the NIC has ingress and/or egress rules.
   */
  public static String filterName(boolean dhcpClient, StatefulRules r) {
    String base = dhcpClient ? CLEAN_TRAFFIC : CLEAN_TRAFFIC_NO_DHCP;
    return base + (r.ingress() ? r.egress() ? "-inout" : "-in" : r.egress() ? "-out" : "");
  }

  /** The kinds of allow list per family, in the order the parameters are written. */
  private static final List<Protocol> KINDS = List.of(Protocol.TCP, Protocol.UDP, Protocol.ICMP, Protocol.ANY);

  /** One direction's allows as paired lists ({@code prefix} IN_ or OUT_), a placeholder for an empty list. */
  static void allowParams(List<FilterRef.Param> p, String prefix, List<Allow> allows) {
    for (boolean v6 : new boolean[] {false, true}) {
      for (Protocol kind : KINDS) {
        Protocol proto = kind == Protocol.ICMP && v6 ? Protocol.ICMPV6 : kind;
        String name = prefix + (kind == Protocol.ANY ? "ANY" : kind.text().toUpperCase(java.util.Locale.ROOT)) + (v6 ? "6" : "4");
        boolean any = false;
        for (Allow a : allows) {
          if (a.protocol() == proto && a.covers(v6)) {
            IpPrefix peer = a.peer() != null ? a.peer() : new IpPrefix(v6, BigInteger.ZERO, 0);
            list(p, name, peer.address(), peer.length(), proto.hasPorts() ? a.portLo() : -1,
                a.portLo() == 0 ? 65535 : a.portHi());
            any = true;
          }
        }
        if (!any) {
          list(p, name, v6 ? NO_ALLOW6 : NO_ALLOW4, v6 ? 128 : 32, proto.hasPorts() ? 0 : -1, 65535);
        }
      }
    }
  }

  private static void list(List<FilterRef.Param> p, String name, String addr, int len, int lo, int hi) {
    p.add(new FilterRef.Param(name, addr));
    p.add(new FilterRef.Param(name + "_PREFIX", Integer.toString(len)));
    if (lo >= 0) {
      p.add(new FilterRef.Param(name + "_PORT", Integer.toString(lo)));
      p.add(new FilterRef.Param(name + "_PORTEND", Integer.toString(hi)));
    }
  }

  /** What happens to one NIC's filterref. */
  public enum Kind {
    /** Right as it is (also: a filterref that is not ours on a NIC we do not filter). */
    KEEP,
    /** Add ours, or replace ours with {@code wanted}. */
    SET,
    /** Remove ours: the NIC is not filtered (or the host runs the nft backend). */
    REMOVE
  }

  /**
   * One NIC: its index among the domain's {@code <interface>} elements, its policy, the filterref it
   * has (null for none) and the one it must have (null for none of ours).
   */
  public record NicChange(int index, NicPolicy nic, FilterRef observed, FilterRef wanted, Kind kind) {}

  /**
   * Compares a domain's filterrefs with its policy, NIC by NIC, in document order.
   *
   * @param nwfilter true for {@code backend = nwfilter}; with the nft backend every filterref of ours is
   *     removed and everything else kept
   * @throws UncloudException when a NIC we must filter carries a filterref that is not ours: a NIC has
   *     one filterref, and replacing an operator's filter silently is not ours to decide
   */
  public static List<NicChange> plan(DomainPolicy p, Domain d, boolean nwfilter) {
    List<Interface> ifs = d.devices == null ? List.of() : d.devices.interfaces;
    if (ifs.size() != p.nics().size()) {
      throw new IllegalStateException("policy has " + p.nics().size() + " NICs, domain " + ifs.size());
    }
    List<NicChange> out = new ArrayList<>();
    for (int i = 0; i < ifs.size(); i++) {
      NicPolicy nic = p.nics().get(i);
      FilterRef observed = observed(ifs.get(i));
      FilterRef wanted = nwfilter ? expected(nic) : null;
      Kind kind;
      if (wanted == null) {
        kind = observed != null && observed.ours() ? Kind.REMOVE : Kind.KEEP;
      } else if (observed != null && !observed.ours()) {
        throw UncloudException.invalid(
            p.name() + " " + nic.name() + " " + nic.mac() + ": has <filterref filter='" + observed.filter()
                + "'>, which uncloud-hook does not manage; remove it (" + wanted.filter()
                + " replaces it) or mark the interface trusted=\"true\"");
      } else {
        kind = wanted.equals(observed) ? Kind.KEEP : Kind.SET;
      }
      out.add(new NicChange(i, nic, observed, wanted, kind));
    }
    return out;
  }

  /** True when nothing has to change. */
  public static boolean inSync(List<NicChange> plan) {
    for (NicChange c : plan) {
      if (c.kind() != Kind.KEEP) {
        return false;
      }
    }
    return true;
  }

  /**
   * One line for {@code prepare}: every NIC whose filterref disagrees with the metadata, what differs,
   * and the command that fixes it.
   */
  public static String mismatch(DomainPolicy p, List<NicChange> plan) {
    return p.name() + ": filterrefs disagree with the metadata: " + differences(plan) + "; run 'uncloud-hook sync "
        + p.name() + "'";
  }

  /** {@code net0 52:54:00:aa:bb:01: <difference>; …} for every NIC that has to change. */
  public static String differences(List<NicChange> plan) {
    List<String> parts = new ArrayList<>();
    for (NicChange c : plan) {
      if (c.kind() != Kind.KEEP) {
        parts.add(c.nic().name() + " " + c.nic().mac() + ": " + difference(c));
      }
    }
    return String.join("; ", parts);
  }

  /** What differs for one NIC, in words. */
  public static String difference(NicChange c) {
    FilterRef o = c.observed();
    FilterRef w = c.wanted();
    if (c.kind() == Kind.REMOVE) {
      return "has " + o.filter() + " but is not filtered (" + c.nic().reason()
          + (w == null && c.nic().mode() != Mode.OPEN && c.nic().filterable() ? ", backend = nft" : "") + ")";
    }
    if (o == null) {
      return "has no filterref, needs " + w.filter();
    }
    if (!o.filter().equals(w.filter())) {
      return "has " + o.filter() + ", needs " + w.filter();
    }
    List<String> d = new ArrayList<>();
    if (!o.values("MAC").equals(w.values("MAC"))) {
      d.add("MAC " + o.values("MAC") + " should be " + w.values("MAC"));
    }
    for (String fam : List.of("IPV4", "IPV6")) {
      List<String> have = pairs(o, fam);
      List<String> want = pairs(w, fam);
      if (!have.equals(want)) {
        d.add((fam.equals("IPV4") ? "IPv4 " : "IPv6 ") + have + " should be " + want);
      }
    }
    for (String dir : List.of("IN_", "OUT_")) {
      List<String> have = allows(o, dir);
      List<String> want = allows(w, dir);
      if (!have.equals(want)) {
        d.add((dir.equals("IN_") ? "ingress " : "egress ") + have + " should be " + want);
      }
    }
    if (d.isEmpty()) {
      d.add("parameters " + describeParams(o) + " should be " + describeParams(w));
    }
    return String.join(", ", d);
  }

  /** {@code MAC=…, IPV4=192.0.2.10/32, …}: the parameters with the paired lists joined. */
  static String describeParams(FilterRef f) {
    List<String> out = new ArrayList<>();
    for (String mac : f.values("MAC")) {
      out.add("MAC=" + mac);
    }
    for (String fam : List.of("IPV4", "IPV6")) {
      for (String a : pairs(f, fam)) {
        out.add(fam + "=" + a);
      }
    }
    for (String dir : List.of("IN_", "OUT_")) {
      List<String> a = allows(f, dir);
      if (!a.isEmpty() || !f.values(dir + "ANY4").isEmpty()) {
        out.add((dir.equals("IN_") ? "ingress" : "egress") + "=" + a);
      }
    }
    for (FilterRef.Param x : f.params()) {
      if (!x.name().matches("MAC|IPV4|IPV4_PREFIX|IPV6|IPV6_PREFIX|(IN|OUT)_(TCP|UDP|ICMP|ANY)[46](_PREFIX|_PORT|_PORTEND)?")) {
        out.add(x.name() + "=" + x.value());
      }
    }
    return String.join(", ", out);
  }

  /**
   * One direction's allows as words ({@code tcp 198.51.100.0/24 22}, {@code icmp any}, {@code any
   * 203.0.113.7/32}), placeholders left out; a list of different lengths shows a {@code ?}.
   */
  static List<String> allows(FilterRef f, String dir) {
    List<String> out = new ArrayList<>();
    for (String fam : List.of("4", "6")) {
      for (String kind : List.of("TCP", "UDP", "ICMP", "ANY")) {
        String n = dir + kind + fam;
        List<String> a = f.values(n);
        List<String> l = f.values(n + "_PREFIX");
        List<String> lo = f.values(n + "_PORT");
        List<String> hi = f.values(n + "_PORTEND");
        boolean ports = kind.equals("TCP") || kind.equals("UDP");
        for (int i = 0; i < a.size(); i++) {
          String len = i < l.size() ? l.get(i) : "?";
          if (a.get(i).equals(fam.equals("4") ? NO_ALLOW4 : NO_ALLOW6) && len.equals(fam.equals("4") ? "32" : "128")) {
            continue;
          }
          String proto = kind.equals("ICMP") && fam.equals("6") ? "icmpv6" : kind.toLowerCase(java.util.Locale.ROOT);
          String peer = len.equals("0") ? "any" : a.get(i) + "/" + len;
          String port = "";
          if (ports) {
            String p0 = i < lo.size() ? lo.get(i) : "?";
            String p1 = i < hi.size() ? hi.get(i) : "?";
            port = p0.equals("0") && p1.equals("65535") ? "" : " " + (p0.equals(p1) ? p0 : p0 + "-" + p1);
          }
          out.add(proto + " " + peer + port);
        }
      }
    }
    return out;
  }

  /** {@code IPV4[i]/IPV4_PREFIX[i]} for every i; the placeholder 0.0.0.0/32 shows as nothing. */
  private static List<String> pairs(FilterRef f, String family) {
    List<String> a = f.values(family);
    List<String> l = f.values(family + "_PREFIX");
    List<String> out = new ArrayList<>();
    for (int i = 0; i < Math.max(a.size(), l.size()); i++) {
      String addr = i < a.size() ? a.get(i) : "?";
      String len = i < l.size() ? l.get(i) : "?";
      if (!(family.equals("IPV4") && addr.equals(NO_IPV4) && len.equals("32"))) {
        out.add(addr + "/" + len);
      }
    }
    return out;
  }

  /** The filterref a domain XML's NIC has, or null. */
  static FilterRef observed(Interface n) {
    if (n.filterref == null) {
      return null;
    }
    List<FilterRef.Param> ps = new ArrayList<>();
    for (Interface.Parameter x : n.filterref.parameters) {
      ps.add(new FilterRef.Param(x.name == null ? "" : x.name, x.value == null ? "" : x.value));
    }
    return new FilterRef(n.filterref.filter == null ? "" : n.filterref.filter, ps);
  }

  /** The fewest CIDR prefixes that cover exactly the set's ranges, in address order. */
  public static List<IpPrefix> cidrs(AddressSet set) {
    int bits = set.v6() ? 128 : 32;
    List<IpPrefix> out = new ArrayList<>();
    for (AddressSet.Range r : set.ranges()) {
      BigInteger first = r.first();
      while (first.compareTo(r.last()) <= 0) {
        // the largest aligned block starting at first that does not pass last
        int size = first.signum() == 0 ? bits : first.getLowestSetBit();
        BigInteger remaining = r.last().subtract(first).add(BigInteger.ONE);
        while (BigInteger.ONE.shiftLeft(size).compareTo(remaining) > 0) {
          size--;
        }
        out.add(new IpPrefix(set.v6(), first, bits - size));
        first = first.add(BigInteger.ONE.shiftLeft(size));
      }
    }
    return out;
  }
}
