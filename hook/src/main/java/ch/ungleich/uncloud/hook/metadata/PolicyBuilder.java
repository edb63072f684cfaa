package ch.ungleich.uncloud.hook.metadata;

import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.model.Allow;
import ch.ungleich.uncloud.hook.model.AddressSet;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.model.IpPrefix;
import ch.ungleich.uncloud.hook.model.Mac;
import ch.ungleich.uncloud.hook.model.Mode;
import ch.ungleich.uncloud.hook.model.NicPolicy;
import ch.ungleich.uncloud.hook.model.Protocol;
import ch.ungleich.uncloud.hook.model.StatefulRules;
import ch.ungleich.uncloud.libvirtxml.domain.Domain;
import ch.ungleich.uncloud.libvirtxml.domain.Interface;
import ch.ungleich.uncloud.libvirtxml.firewall.Firewall;
import ch.ungleich.uncloud.libvirtxml.firewall.FirewallInterface;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * Domain XML + host configuration -> {@link DomainPolicy}. Pure. Every rejection is an
 * {@link UncloudException} whose message names the domain, the NIC and the MAC it is about.
 */
public final class PolicyBuilder {
  private static final Pattern UUID =
      Pattern.compile("[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}");
  /** Interface names we put into nft scripts and file names: what libvirt generates and more, nothing hostile. */
  private static final Pattern TAP = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.-]{0,14}");

  private static final List<IpPrefix> FORBIDDEN =
      List.of(
          IpPrefix.parse("0.0.0.0/8"),
          IpPrefix.parse("127.0.0.0/8"),
          IpPrefix.parse("224.0.0.0/4"),
          IpPrefix.parse("255.255.255.255"),
          IpPrefix.parse("::"),
          IpPrefix.parse("::1"),
          IpPrefix.parse("ff00::/8"));
  private static final String[] FORBIDDEN_WHY = {
    "'this network' (0.0.0.0/8)", "loopback", "multicast", "broadcast", "unspecified", "loopback", "multicast"
  };
  private static final IpPrefix LINK_LOCAL = IpPrefix.parse("fe80::/10");

  private PolicyBuilder() {}

  /** Builds the policy; throws on any invalid or conflicting metadata. */
  public static DomainPolicy build(Domain d, Config config) {
    String name = d.name == null || d.name.isBlank() ? "(unnamed)" : d.name.strip();
    if (d.uuid == null || !UUID.matcher(d.uuid).matches()) {
      throw UncloudException.invalid(name + ": domain XML has no valid <uuid>");
    }
    String uuid = normaliseUuid(d.uuid);
    List<Interface> nics = d.devices == null ? List.of() : d.devices.interfaces;
    Firewall fw = d.metadata == null ? null : d.metadata.firewall;

    // domain NICs by MAC
    Map<Mac, String> nicNames = new LinkedHashMap<>();
    List<Mac> nicMacs = new ArrayList<>();
    for (int i = 0; i < nics.size(); i++) {
      Interface n = nics.get(i);
      String nicName = n.alias != null && n.alias.name != null ? n.alias.name : "nic" + i;
      if (n.mac == null || n.mac.address == null) {
        throw UncloudException.invalid(name + " " + nicName + ": interface has no <mac address>");
      }
      Mac mac = parseMac(n.mac.address, name + " " + nicName);
      if (nicNames.containsKey(mac)) {
        throw UncloudException.invalid(
            name + ": NICs " + nicNames.get(mac) + " and " + nicName + " have the same MAC " + mac);
      }
      nicNames.put(mac, nicName);
      nicMacs.add(mac);
    }

    // metadata interfaces by MAC
    Map<Mac, FirewallInterface> listed = new LinkedHashMap<>();
    if (fw != null) {
      for (FirewallInterface fi : fw.interfaces) {
        Mac mac = parseMac(fi.mac, name + " metadata");
        if (listed.put(mac, fi) != null) {
          throw UncloudException.invalid(name + " metadata: interface " + mac + " is listed twice");
        }
      }
    }

    List<NicPolicy> out = new ArrayList<>();
    List<String> warnings = new ArrayList<>();
    Map<IpPrefix, String> claims = new LinkedHashMap<>();
    for (int i = 0; i < nics.size(); i++) {
      Interface n = nics.get(i);
      Mac mac = nicMacs.get(i);
      String where = name + " " + nicNames.get(mac) + " " + mac;
      String type = n.type == null ? "" : n.type;
      boolean ovs = n.virtualport != null && "openvswitch".equals(n.virtualport.type);
      boolean filterable = (type.equals("bridge") || type.equals("network")) && !ovs;
      String tap = n.target == null ? null : n.target.dev;
      if (tap != null && filterable && !TAP.matcher(tap).matches()) {
        throw UncloudException.invalid(where + ": tap name '" + printable(tap) + "' is not a safe interface name");
      }
      FirewallInterface fi = listed.get(mac);
      Mode mode;
      String reason;
      List<IpPrefix> v4 = new ArrayList<>();
      List<IpPrefix> v6 = new ArrayList<>();
      StatefulRules rules = StatefulRules.NONE;
      if (fi != null) {
        boolean trusted = fi.trusted != null && (fi.trusted.strip().equals("true") || fi.trusted.strip().equals("1"));
        mode = trusted ? Mode.OPEN : Mode.FILTER;
        reason = trusted ? "trusted" : "metadata";
        for (FirewallInterface.Ip ip : fi.ips) {
          IpPrefix p = parseIp(ip.address, where, trusted);
          (p.v6() ? v6 : v4).add(p);
          if (!trusted) {
            claim(claims, p, nicNames.get(mac), where);
          }
        }
        rules = rules(fi, where, trusted, config);
      } else {
        switch (config.unlisted()) {
          case "allow" -> mode = Mode.OPEN;
          case "mac-only" -> mode = Mode.MAC_ONLY;
          default -> mode = Mode.FILTER;
        }
        reason = "unlisted=" + config.unlisted();
      }
      if (config.linkLocalAny()) {
        v6.add(LINK_LOCAL);
      } else {
        v6.add(mac.eui64LinkLocal());
      }
      if (!filterable && mode != Mode.OPEN) {
        warnings.add(
            where + ": interface type '" + type + (ovs ? "' on Open vSwitch" : "'")
                + " is not on a Linux bridge; uncloud-hook cannot filter it and it is NOT protected");
      }
      out.add(
          new NicPolicy(
              tap,
              mac,
              nicNames.get(mac),
              type,
              filterable,
              mode,
              reason,
              AddressSet.of(false, v4),
              AddressSet.of(true, v6),
              // an unlisted NIC gets no IPv4 at all, not even the DHCP discover
              config.dhcpClient() && fi != null,
              rules));
    }
    // Entries for a MAC the domain has no NIC with (yet): kept, so that both orders work (attach the
    // NIC, then set its metadata; or set it first, for the NIC about to be attached). Checked like any
    // other entry, so a bad address is refused now, not when the NIC arrives.
    for (Map.Entry<Mac, FirewallInterface> e : listed.entrySet()) {
      Mac mac = e.getKey();
      if (nicNames.containsKey(mac)) {
        continue;
      }
      String where = name + " metadata " + mac;
      FirewallInterface fi = e.getValue();
      boolean trusted = fi.trusted != null && (fi.trusted.strip().equals("true") || fi.trusted.strip().equals("1"));
      for (FirewallInterface.Ip ip : fi.ips) {
        IpPrefix p = parseIp(ip.address, where, trusted);
        if (!trusted) {
          claim(claims, p, mac.text() + " (not attached yet)", where);
        }
      }
      rules(fi, where, trusted, config);
      warnings.add(name + " metadata: interface " + mac + ": no such NIC yet (its NICs: "
          + (nicMacs.isEmpty() ? "none" : String.join(", ", nicMacs.stream().map(Mac::text).toList()))
          + "); the entry applies once a NIC with this MAC is attached");
    }
    return new DomainPolicy(name, uuid, List.copyOf(out), List.copyOf(warnings));
  }

  /**
   * The NIC's {@code uc:ingress} / {@code uc:egress}, validated. A trusted NIC is not filtered in either
   * direction, but its rules are still checked (a typo is refused, not kept for later).
   */
  private static StatefulRules rules(FirewallInterface fi, String where, boolean trusted, Config config) {
    List<Allow> in = allows(fi.ingress, where, "ingress", "from");
    List<Allow> out = allows(fi.egress, where, "egress", "to");
    if (trusted) {
      return StatefulRules.NONE;
    }
    boolean ingress = fi.ingress != null || config.ingressDeny();
    return new StatefulRules(ingress, in, fi.egress != null, out);
  }

  private static List<Allow> allows(FirewallInterface.Rules rules, String where, String direction, String peer) {
    if (rules == null) {
      return List.of();
    }
    if (rules.allows.size() > StatefulRules.MAX_RULES) {
      throw UncloudException.invalid(where + ": uc:" + direction + " has " + rules.allows.size()
          + " rules; at most " + StatefulRules.MAX_RULES + " are allowed (use prefixes and port ranges)");
    }
    List<Allow> out = new ArrayList<>();
    for (FirewallInterface.Allow a : rules.allows) {
      String wrong = peer.equals("from") ? a.to : a.from;
      if (wrong != null) {
        throw UncloudException.invalid(where + ": " + direction + " rule " + text(a) + ": " + direction
            + " rules take '" + peer + "' (the remote side), not '" + (peer.equals("from") ? "to" : "from") + "'");
      }
      out.add(allow(a, where + ": " + direction + " rule " + text(a), peer.equals("from") ? a.from : a.to, peer));
    }
    return List.copyOf(out);
  }

  private static final Pattern PORT = Pattern.compile("([0-9]{1,5})(-([0-9]{1,5}))?");

  private static Allow allow(FirewallInterface.Allow a, String where, String peerText, String peer) {
    String proto = a.protocol == null ? "any" : a.protocol.strip();
    Protocol protocol = Protocol.parse(proto);
    if (protocol == null) {
      throw UncloudException.invalid(where + ": unknown protocol '" + printable(proto)
          + "' (tcp, udp, icmp, icmpv6 or any)");
    }
    int lo = 0;
    int hi = 0;
    if (a.port != null) {
      if (!protocol.hasPorts()) {
        throw UncloudException.invalid(where + ": a port needs protocol=\"tcp\" or \"udp\"");
      }
      java.util.regex.Matcher m = PORT.matcher(a.port.strip());
      if (!m.matches()) {
        throw UncloudException.invalid(where + ": port '" + printable(a.port) + "' is not a port or a lo-hi range");
      }
      lo = Integer.parseInt(m.group(1));
      hi = m.group(3) == null ? lo : Integer.parseInt(m.group(3));
      if (lo < 1 || lo > 65535 || hi < 1 || hi > 65535) {
        throw UncloudException.invalid(where + ": ports are 1 to 65535");
      }
      if (hi < lo) {
        throw UncloudException.invalid(where + ": port range " + lo + "-" + hi + " is reversed; write " + hi + "-" + lo);
      }
    }
    IpPrefix p = null;
    if (peerText != null) {
      try {
        p = IpPrefix.parse(peerText);
      } catch (UncloudException e) {
        throw UncloudException.invalid(where + ": " + peer + ": " + e.getMessage());
      }
      if (!protocol.covers(p.v6())) {
        throw UncloudException.invalid(where + ": " + peer + " " + p + " is an IPv" + (p.v6() ? "6" : "4")
            + " prefix, but " + protocol.text() + " is IPv" + (p.v6() ? "4" : "6") + " only");
      }
    }
    return new Allow(protocol, lo, hi, p, text(a));
  }

  /** The rule as an operator wrote it, for messages: {@code <uc:allow protocol="tcp" port="22"/>}. */
  private static String text(FirewallInterface.Allow a) {
    StringBuilder b = new StringBuilder("<uc:allow");
    String[][] attrs = {{"protocol", a.protocol}, {"port", a.port}, {"from", a.from}, {"to", a.to}};
    for (String[] kv : attrs) {
      if (kv[1] != null) {
        b.append(' ').append(kv[0]).append("=\"").append(printable(kv[1])).append('"');
      }
    }
    return b.append("/>").toString();
  }

  /** libvirt writes UUIDs in lower case with dashes; so do we, whatever the XML had. */
  public static String normaliseUuid(String uuid) {
    String h = uuid.strip().replace("-", "").toLowerCase(java.util.Locale.ROOT);
    return h.substring(0, 8) + "-" + h.substring(8, 12) + "-" + h.substring(12, 16) + "-" + h.substring(16, 20)
        + "-" + h.substring(20);
  }

  private static Mac parseMac(String text, String where) {
    try {
      return Mac.parse(text);
    } catch (UncloudException e) {
      throw UncloudException.invalid(where + ": " + e.getMessage());
    }
  }

  private static IpPrefix parseIp(String text, String where, boolean trusted) {
    IpPrefix p;
    try {
      p = IpPrefix.parse(text);
    } catch (UncloudException e) {
      throw UncloudException.invalid(where + ": " + e.getMessage());
    }
    for (int k = 0; k < FORBIDDEN.size(); k++) {
      if (FORBIDDEN.get(k).overlaps(p)) {
        throw UncloudException.invalid(
            where + ": " + p + " is " + (FORBIDDEN.get(k).contains(p) ? "" : "or contains ") + "a "
                + FORBIDDEN_WHY[k] + " address and can never be a source");
      }
    }
    int min = p.v6() ? 32 : 8;
    if (!trusted && p.length() < min) {
      throw UncloudException.invalid(
          where + ": " + p + " is broader than /" + min + "; list narrower prefixes, or mark the interface"
              + " trusted=\"true\" (no filtering) if it is a router");
    }
    return p;
  }

  private static void claim(Map<IpPrefix, String> claims, IpPrefix p, String nic, String where) {
    for (Map.Entry<IpPrefix, String> c : claims.entrySet()) {
      if (!c.getValue().equals(nic) && c.getKey().overlaps(p)) {
        throw UncloudException.invalid(
            where + ": " + p + " overlaps " + c.getKey() + " of NIC " + c.getValue()
                + "; one address belongs to one NIC");
      }
    }
    claims.putIfAbsent(p, nic);
  }

  private static String printable(String s) {
    StringBuilder b = new StringBuilder();
    for (char c : s.toCharArray()) {
      b.append(c >= 0x20 && c < 0x7f ? String.valueOf(c) : String.format("\\x%02x", (int) c));
    }
    return b.toString();
  }

}
