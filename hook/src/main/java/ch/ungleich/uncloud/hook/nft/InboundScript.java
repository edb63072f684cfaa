package ch.ungleich.uncloud.hook.nft;

import ch.ungleich.uncloud.hook.model.AddressSet;
import ch.ungleich.uncloud.hook.model.Allow;
import ch.ungleich.uncloud.hook.model.IpPrefix;
import ch.ungleich.uncloud.hook.model.NicPolicy;
import ch.ungleich.uncloud.hook.model.StatefulRules;
import java.math.BigInteger;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.state.Plan;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * Traffic TO VMs (issue 17): the delivery filter and the stateful ingress/egress rules. Pure, like
 * {@link NftScript}; the text goes into the same {@code nft -f} transaction as the anti-spoofing rules.
 *
 * <p>Two tables of their own, both named {@value #TABLE}, with shared chains whose rules never change
 * and shared sets that hold one NIC's state as elements (O(1) lookups per packet, O(elements of the
 * NIC) per event):
 *
 * <ul>
 *   <li>{@code table inet uncloud-inbound}, hook forward. br_netfilter passes bridged IP through the
 *       inet hooks, where conntrack works (this kernel has no nf_conntrack_bridge, so {@code ct} in a
 *       bridge table fails). There {@code iifname}/{@code oifname} name the bridge, not the port, so
 *       the verdict is keyed by the VM's own address, which anti-spoofing makes trustworthy: traffic
 *       from an egress-filtered NIC's address ({@code out4}/{@code out6}) and to an ingress-filtered
 *       NIC's address ({@code in4}/{@code in6}) must be a reply (ct established/related) or match an
 *       allow element {@code own . l4proto . dport . peer}, else it is dropped. What passed gets a
 *       mark bit ({@link #MARK_IN}, {@link #MARK_OUT}).
 *   <li>{@code table bridge uncloud-inbound}, hook postrouting (it runs per output port, also for
 *       flooded copies): a filtered NIC's port receives only frames to its own MAC, broadcast or
 *       multicast ({@code macs}); an ingress-filtered port receives unicast IP only if the inet chain
 *       approved it ({@link #MARK_IN}) AND its destination is this port's own address ({@code own4},
 *       {@code own6}, keyed by {@code oifname}): an approval for VM A's address is never delivered to
 *       VM B's port. An egress-filtered port's IP must carry {@link #MARK_OUT}. Without br_netfilter's
 *       inet pass (bridge-nf-call-ip(6)tables = 0) nothing is marked, so such traffic is dropped:
 *       fail closed, and {@code doctor} says why.
 * </ul>
 */
public final class InboundScript {
  public static final String TABLE = "uncloud-inbound";
  /** Set in the packet mark by the inet chain when a packet to an ingress-filtered address passed. */
  public static final String MARK_IN = "0x00100000";
  /** Set when a packet from an egress-filtered address passed. */
  public static final String MARK_OUT = "0x00200000";

  private static final String B = "bridge " + TABLE;
  private static final String I = "inet " + TABLE;
  private static final BigInteger MAX_PORT = BigInteger.valueOf(65535);
  private static final BigInteger MAX_PROTO = BigInteger.valueOf(255);
  private static final IpPrefix LINK_LOCAL = IpPrefix.parse("fe80::/10");

  private InboundScript() {}

  /** Tables and sets, idempotent: enough for adding and removing elements. */
  public static List<String> ensure() {
    List<String> l = new ArrayList<>();
    l.add("add table " + B + " { comment \"uncloud-hook: delivery filter and security groups; managed, do not edit\"; }");
    l.add("add set " + B + " delivered { type ifname; comment \"filtered VM ports: only own MAC, broadcast, multicast\"; }");
    l.add("add set " + B + " macs { type ifname . ether_addr; comment \"port . its VM's MAC\"; }");
    l.add("add set " + B + " ingress { type ifname; comment \"ports with uc:ingress\"; }");
    l.add("add set " + B + " egress { type ifname; comment \"ports with uc:egress\"; }");
    l.add("add set " + B + " own4 { type ifname . ipv4_addr; flags interval; comment \"ingress port . own IPv4\"; }");
    l.add("add set " + B + " own6 { type ifname . ipv6_addr; flags interval; comment \"ingress port . own IPv6\"; }");
    l.add("add table " + I + " { comment \"uncloud-hook: security groups; managed, do not edit\"; }");
    for (String f : List.of("4", "6")) {
      String t = f.equals("4") ? "ipv4_addr" : "ipv6_addr";
      l.add("add set " + I + " in" + f + " { type " + t + "; flags interval; comment \"own addresses of NICs with uc:ingress\"; }");
      l.add("add set " + I + " out" + f + " { type " + t + "; flags interval; comment \"own addresses of NICs with uc:egress\"; }");
      l.add("add set " + I + " allow-in" + f + " { type " + t + " . inet_proto . inet_service . " + t
          + "; flags interval; comment \"own . l4proto . dport . from\"; }");
      l.add("add set " + I + " allow-out" + f + " { type " + t + " . inet_proto . inet_service . " + t
          + "; flags interval; comment \"own . l4proto . dport . to\"; }");
    }
    return l;
  }

  /** {@link #ensure()} plus the shared chains, rewritten (the same rules every time). */
  public static List<String> prelude() {
    List<String> l = new ArrayList<>(ensure());
    // every chain first: a jump may only name a chain that exists
    chain(l, B, "postrouting", "type filter hook postrouting priority 0; policy accept;");
    chain(l, B, "egress", null);
    chain(l, B, "deliver", null);
    chain(l, I, "forward", "type filter hook forward priority 0; policy accept;");
    chain(l, I, "egress", null);
    chain(l, I, "egress-decide", null);
    chain(l, I, "ingress", null);
    chain(l, I, "ingress-decide", null);
    // bridge: delivery, ingress approval, egress approval
    rule(l, B, "postrouting", "iifname @egress jump egress", "from a port with uc:egress");
    rule(l, B, "postrouting", "oifname @delivered jump deliver", "to a filtered VM port");
    rule(l, B, "egress", "ether type ip ip saddr 0.0.0.0 return", "DHCPv4 discover (anti-spoofing allowed it)");
    rule(l, B, "egress", "ether type ip6 ip6 saddr :: return", "DAD, RS, MLD from :: (anti-spoofing allowed it)");
    rule(l, B, "egress", "ether type ip meta mark & " + MARK_OUT + " == 0 counter drop",
        "IPv4 the inet egress chain did not pass (not allowed, or bridge-nf-call-iptables = 0)");
    rule(l, B, "egress", "ether type ip6 meta mark & " + MARK_OUT + " == 0 counter drop",
        "IPv6 the inet egress chain did not pass (not allowed, or bridge-nf-call-ip6tables = 0)");
    rule(l, B, "deliver", "ether daddr & 01:00:00:00:00:00 == 01:00:00:00:00:00 accept", "broadcast and multicast");
    rule(l, B, "deliver", "oifname . ether daddr != @macs counter drop",
        "unicast for another MAC (flooded unknown unicast)");
    rule(l, B, "deliver", "oifname != @ingress accept", "no uc:ingress");
    rule(l, B, "deliver", "ether type ip meta mark & " + MARK_IN + " == " + MARK_IN + " oifname . ip daddr @own4 accept",
        "IPv4 the inet ingress chain passed, for this port's own address");
    rule(l, B, "deliver", "ether type ip6 meta mark & " + MARK_IN + " == " + MARK_IN + " oifname . ip6 daddr @own6 accept",
        "IPv6 the inet ingress chain passed, for this port's own address");
    rule(l, B, "deliver", "ether type ip6 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert,"
        + " nd-redirect } ip6 hoplimit 255 accept", "NDP to the VM (link-local, never routed)");
    rule(l, B, "deliver", "ether type { ip, ip6 } counter drop",
        "unicast IP not passed by uc:ingress, for another port's address, or bridge-nf-call-ip(6)tables = 0");
    // inet: the stateful decisions
    rule(l, I, "forward", "ip saddr @out4 jump egress", "from a NIC with uc:egress");
    rule(l, I, "forward", "ip6 saddr @out6 jump egress", "from a NIC with uc:egress");
    rule(l, I, "forward", "ip daddr @in4 jump ingress", "to a NIC with uc:ingress");
    rule(l, I, "forward", "ip6 daddr @in6 jump ingress", "to a NIC with uc:ingress");
    rule(l, I, "egress", "jump egress-decide", "drops what is not allowed");
    rule(l, I, "egress", "meta mark set meta mark | " + MARK_OUT, "passed: the bridge lets it leave the port");
    rule(l, I, "egress-decide", "ct state established,related return", "replies, ICMP errors of allowed flows");
    rule(l, I, "egress-decide", "ip saddr . meta l4proto . th dport . ip daddr @allow-out4 return", "uc:egress allow");
    rule(l, I, "egress-decide", "ip6 saddr . meta l4proto . th dport . ip6 daddr @allow-out6 return", "uc:egress allow");
    rule(l, I, "egress-decide", "udp sport 68 udp dport 67 return", "always: DHCPv4 client");
    rule(l, I, "egress-decide", "udp sport 546 udp dport 547 return", "always: DHCPv6 client");
    rule(l, I, "egress-decide", "ip protocol igmp return", "always: IGMP");
    rule(l, I, "egress-decide", "icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert,"
        + " mld-listener-report, mld2-listener-report, mld-listener-done } return", "always: NDP, MLD");
    rule(l, I, "egress-decide", "counter drop", "uc:egress: not allowed");
    rule(l, I, "ingress", "jump ingress-decide", "drops what is not allowed");
    rule(l, I, "ingress", "meta mark set meta mark | " + MARK_IN, "passed: the bridge delivers it to the owner's port");
    rule(l, I, "ingress-decide", "ct state established,related return", "replies, ICMP errors of the VM's flows");
    rule(l, I, "ingress-decide", "ip daddr . meta l4proto . th dport . ip saddr @allow-in4 return", "uc:ingress allow");
    rule(l, I, "ingress-decide", "ip6 daddr . meta l4proto . th dport . ip6 saddr @allow-in6 return", "uc:ingress allow");
    rule(l, I, "ingress-decide", "udp sport 67 udp dport 68 return", "always: DHCPv4 server answers");
    rule(l, I, "ingress-decide", "udp sport 547 udp dport 546 return", "always: DHCPv6 server answers");
    rule(l, I, "ingress-decide", "ip protocol igmp return", "always: IGMP");
    rule(l, I, "ingress-decide", "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert,"
        + " nd-redirect, mld-listener-query } return", "always: NDP, MLD queries");
    rule(l, I, "ingress-decide", "counter drop", "uc:ingress: not allowed");
    return l;
  }

  /**
   * The set elements of one NIC, as {@code <family> <table> <set> { <element> }}: what {@link #add}
   * installs and {@link #remove} takes away again (the hook records them per tap). None for a NIC
   * without a delivery filter (trusted, unlisted = allow).
   */
  public static List<String> elements(NicPolicy nic) {
    List<String> e = new ArrayList<>();
    if (!nic.delivered()) {
      return e;
    }
    String tap = "\"" + NftScript.chain(nic.tap()).substring("port-".length()) + "\"";
    e.add(B + " delivered { " + tap + " }");
    e.add(B + " macs { " + tap + " . " + nic.mac().text() + " }");
    StatefulRules r = nic.rules();
    if (r.ingress()) {
      e.add(B + " ingress { " + tap + " }");
      for (String a : nic.ipv4().elements()) {
        e.add(B + " own4 { " + tap + " . " + a + " }");
      }
      for (String a : nic.ipv6().elements()) {
        e.add(B + " own6 { " + tap + " . " + a + " }");
      }
      inet(e, nic, "in", r.in());
    }
    if (r.egress()) {
      e.add(B + " egress { " + tap + " }");
      inet(e, nic, "out", r.out());
    }
    return e;
  }

  private static void inet(List<String> e, NicPolicy nic, String dir, List<Allow> allows) {
    for (AddressSet own : List.of(nic.ipv4(), nic.ipv6())) {
      boolean v6 = own.v6();
      List<AddressSet.Range> mine = new ArrayList<>();
      for (AddressSet.Range r : own.ranges()) {
        // link_local = any gives every NIC all of fe80::/10: no NIC owns it in the shared set
        if (!(v6 && r.first().equals(LINK_LOCAL.first()) && r.last().equals(LINK_LOCAL.last()))) {
          mine.add(r);
        }
      }
      String f = v6 ? "6" : "4";
      for (AddressSet.Range r : mine) {
        e.add(I + " " + dir + f + " { " + range(r.first(), r.last(), v6) + " }");
      }
      List<Box> boxes = new ArrayList<>();
      for (Allow a : allows) {
        if (a.covers(v6)) {
          boxes.add(box(a, v6));
        }
      }
      for (Box b : disjoint(boxes)) {
        for (AddressSet.Range r : mine) {
          e.add(I + " allow-" + dir + f + " { " + range(r.first(), r.last(), v6) + " . " + num(b.lo[0], b.hi[0])
              + " . " + num(b.lo[1], b.hi[1]) + " . " + range(b.lo[2], b.hi[2], v6) + " }");
        }
      }
    }
  }

  /**
   * What one event changes in the inbound tables: the elements it takes away ({@code removed}) and
   * puts in ({@code added}), and the records that become true once applied (tap to its elements;
   * empty = record removed). {@link #lines()} renders them: every removal before every addition, so
   * an element one tap gives up and another takes (an address moved between NICs) ends up present
   * whatever the taps' order.
   */
  public record Change(List<String> removed, List<String> added, Map<String, List<String>> records) {
    public Change {
      removed = List.copyOf(removed);
      added = List.copyOf(added);
    }

    /** The script lines, grouped per set ({@link #remove}, then {@link #add}). */
    public List<String> lines() {
      List<String> l = new ArrayList<>(remove(removed));
      l.addAll(add(added));
      return l;
    }

    public boolean isEmpty() {
      return removed.isEmpty() && added.isEmpty();
    }

    /** Several changes as one (one transaction, e.g. a batch of domains): removals first, then additions. */
    public static Change of(List<Change> changes) {
      List<String> removed = new ArrayList<>();
      List<String> added = new ArrayList<>();
      Map<String, List<String>> records = new LinkedHashMap<>();
      for (Change c : changes) {
        removed.addAll(c.removed());
        added.addAll(c.added());
        records.putAll(c.records());
      }
      return new Change(removed, added, records);
    }
  }

  /**
   * The inbound part of an anti-spoofing plan: every claimed tap's previously recorded elements are
   * removed and its NIC's current ones added; every released tap's recorded elements are removed.
   */
  public static Change plan(DomainPolicy p, Plan plan, Function<String, List<String>> recorded) {
    List<String> removed = new ArrayList<>();
    List<String> added = new ArrayList<>();
    Map<String, List<String>> records = new LinkedHashMap<>();
    for (String tap : plan.claim().keySet()) {
      NicPolicy nic = p.nics().stream().filter(n -> tap.equals(n.tap())).findFirst().orElse(null);
      List<String> now = nic == null ? List.of() : elements(nic);
      List<String> before = recorded.apply(tap);
      if (!before.equals(now) || now.isEmpty()) {
        removed.addAll(before);
      } // else: the same elements added again repair a flushed set and change nothing otherwise
      added.addAll(now);
      records.put(tap, now);
    }
    for (String tap : plan.release()) {
      removed.addAll(recorded.apply(tap));
      records.put(tap, List.of());
    }
    return new Change(removed, added, records);
  }

  /**
   * Reconcile: makes the elements of every tap {@code want}; taps with a record that are not wanted
   * lose theirs. {@code present} false (the tables were missing, e.g. after {@code nft flush ruleset}):
   * everything wanted is added to tables the caller rebuilds ({@link #rebuild()}).
   */
  public static Change reconcile(Map<String, List<String>> want, Function<String, List<String>> recorded,
      List<String> recordedTaps, boolean present) {
    List<String> removed = new ArrayList<>();
    List<String> added = new ArrayList<>();
    Map<String, List<String>> records = new LinkedHashMap<>();
    for (Map.Entry<String, List<String>> e : want.entrySet()) {
      List<String> before = recorded.apply(e.getKey());
      if (!present) {
        added.addAll(e.getValue());
      } else if (!before.equals(e.getValue())) {
        removed.addAll(before);
        added.addAll(e.getValue());
      }
      records.put(e.getKey(), e.getValue());
    }
    for (String tap : recordedTaps) {
      if (!want.containsKey(tap)) {
        if (present) {
          removed.addAll(recorded.apply(tap));
        }
        records.put(tap, List.of());
      }
    }
    return new Change(removed, added, records);
  }

  /** Both tables deleted and created again empty, with their chains (one transaction with the elements). */
  public static List<String> rebuild() {
    List<String> l = new ArrayList<>();
    l.add("add table " + B);
    l.add("delete table " + B);
    l.add("add table " + I);
    l.add("delete table " + I);
    l.addAll(prelude());
    return l;
  }

  /** {@code lines} after {@code head}, one per line; {@code script} when there is nothing to add. */
  public static String append(String script, List<String> head, Change c) {
    if (c.isEmpty()) {
      return script;
    }
    StringBuilder b = new StringBuilder(script);
    for (String l : head) {
      b.append(l).append('\n');
    }
    for (String l : c.lines()) {
      b.append(l).append('\n');
    }
    return b.toString();
  }

  /**
   * At most this many elements in one {@code add element}/{@code delete element} line. nft 1.0.6
   * re-sorts an interval set's elements for every such command, so one command per element costs
   * O(elements²) in bulk (more than 4 min for 10 000 ports' elements, against 13 s grouped); a bound
   * keeps each line and nft's parse of it small.
   */
  static final int CHUNK = 1000;

  /** Installs elements (the caller renders {@link #ensure()} or {@link #prelude()} first), grouped per set. */
  public static List<String> add(List<String> elements) {
    return grouped("add element ", elements);
  }

  /**
   * Removes elements, grouped per set; each group is added first, so that removing one that is
   * already gone cannot fail.
   */
  public static List<String> remove(List<String> elements) {
    List<String> l = new ArrayList<>(grouped("add element ", elements));
    l.addAll(grouped("delete element ", elements));
    return l;
  }

  /** Deletes elements known to be present (drift repair), grouped per set. */
  public static List<String> delete(List<String> elements) {
    return grouped("delete element ", elements);
  }

  /**
   * {@code verb} with the elements ({@code <family> <table> <set> { <element> }}) of each set in one
   * line, {@code <verb><family> <table> <set> { a, b, ... }}, sets in the order they first appear,
   * each element once, at most {@link #CHUNK} per line. The same elements as one line each: nft checks
   * and applies them alike (a conflicting interval fails either way).
   */
  static List<String> grouped(String verb, List<String> elements) {
    Map<String, java.util.LinkedHashSet<String>> sets = new LinkedHashMap<>();
    for (String e : elements) {
      int open = e.indexOf(" { ");
      if (open < 0 || !e.endsWith(" }")) {
        throw new IllegalArgumentException("not a set element: " + e);
      }
      sets.computeIfAbsent(e.substring(0, open), k -> new java.util.LinkedHashSet<>())
          .add(e.substring(open + 3, e.length() - 2));
    }
    List<String> l = new ArrayList<>();
    for (Map.Entry<String, java.util.LinkedHashSet<String>> s : sets.entrySet()) {
      List<String> all = new ArrayList<>(s.getValue());
      for (int i = 0; i < all.size(); i += CHUNK) {
        l.add(verb + s.getKey() + " { " + String.join(", ", all.subList(i, Math.min(all.size(), i + CHUNK))) + " }");
      }
    }
    return l;
  }

  /** Both tables, deleted (reconcile rebuilds them; uninstall). */
  public static List<String> dropTables() {
    return List.of("add table " + B, "delete table " + B, "add table " + I, "delete table " + I);
  }

  // ------------------------------------------------------------------ allow rules as disjoint boxes

  /** protocol x destination port x peer address, inclusive bounds. */
  record Box(BigInteger[] lo, BigInteger[] hi) {}

  static Box box(Allow a, boolean v6) {
    BigInteger pLo = a.protocol().number() < 0 ? BigInteger.ZERO : BigInteger.valueOf(a.protocol().number());
    BigInteger pHi = a.protocol().number() < 0 ? MAX_PROTO : pLo;
    BigInteger dLo = a.portLo() == 0 ? BigInteger.ZERO : BigInteger.valueOf(a.portLo());
    BigInteger dHi = a.portLo() == 0 ? MAX_PORT : BigInteger.valueOf(a.portHi());
    BigInteger aLo = a.peer() == null ? BigInteger.ZERO : a.peer().first();
    BigInteger aHi = a.peer() == null ? BigInteger.ONE.shiftLeft(v6 ? 128 : 32).subtract(BigInteger.ONE) : a.peer().last();
    return new Box(new BigInteger[] {pLo, dLo, aLo}, new BigInteger[] {pHi, dHi, aHi});
  }

  /**
   * The union of the boxes as disjoint boxes, in order: nft's concatenated interval sets refuse
   * overlapping elements, and a NIC's allows may overlap (tcp 80-81 and "any from X").
   */
  static List<Box> disjoint(List<Box> boxes) {
    List<Box> out = new ArrayList<>();
    for (Box b : boxes) {
      List<Box> pieces = List.of(b);
      for (Box have : out) {
        List<Box> next = new ArrayList<>();
        for (Box p : pieces) {
          next.addAll(subtract(p, have));
        }
        pieces = next;
      }
      out.addAll(pieces);
    }
    return out;
  }

  /** {@code a} minus {@code b} as at most 6 disjoint boxes. */
  static List<Box> subtract(Box a, Box b) {
    for (int d = 0; d < 3; d++) {
      if (a.hi[d].compareTo(b.lo[d]) < 0 || b.hi[d].compareTo(a.lo[d]) < 0) {
        return List.of(a);
      }
    }
    List<Box> out = new ArrayList<>();
    BigInteger[] lo = a.lo.clone();
    BigInteger[] hi = a.hi.clone();
    for (int d = 0; d < 3; d++) {
      if (lo[d].compareTo(b.lo[d]) < 0) {
        BigInteger[] h = hi.clone();
        h[d] = b.lo[d].subtract(BigInteger.ONE);
        out.add(new Box(lo.clone(), h));
        lo[d] = b.lo[d];
      }
      if (hi[d].compareTo(b.hi[d]) > 0) {
        BigInteger[] l = lo.clone();
        l[d] = b.hi[d].add(BigInteger.ONE);
        out.add(new Box(l, hi.clone()));
        hi[d] = b.hi[d];
      }
    }
    return out;
  }

  private static String num(BigInteger lo, BigInteger hi) {
    return lo.equals(hi) ? lo.toString() : lo + "-" + hi;
  }

  /** An address range as nft writes it: an address, a prefix, or {@code a-b}. */
  static String range(BigInteger first, BigInteger last, boolean v6) {
    String a = IpPrefix.format(first, v6);
    if (first.equals(last)) {
      return a;
    }
    BigInteger size = last.subtract(first).add(BigInteger.ONE);
    if (size.bitCount() == 1 && first.mod(size).signum() == 0) {
      return a + "/" + ((v6 ? 128 : 32) - (size.bitLength() - 1));
    }
    return a + "-" + IpPrefix.format(last, v6);
  }

  private static void chain(List<String> l, String table, String name, String hook) {
    l.add("add chain " + table + " " + name + (hook == null ? "" : " { " + hook + " }"));
    l.add("flush chain " + table + " " + name);
  }

  private static void rule(List<String> l, String table, String chain, String expr, String comment) {
    l.add("add rule " + table + " " + chain + " " + expr + " comment \"" + NftScript.comment(comment) + "\"");
  }
}
