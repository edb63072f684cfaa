import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.config.ConfigFile;
import ch.ungleich.uncloud.hook.metadata.PolicyBuilder;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.model.NicPolicy;
import ch.ungleich.uncloud.hook.nft.InboundScript;
import ch.ungleich.uncloud.hook.nft.NftBackend;
import ch.ungleich.uncloud.hook.nft.NftScript;
import ch.ungleich.uncloud.hook.state.Owner;
import ch.ungleich.uncloud.hook.state.Plan;
import ch.ungleich.uncloud.hook.state.StateStore;
import ch.ungleich.uncloud.libvirtxml.DomainReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Benchmark helper (issue 7), compiled by tests/bench/run against the hook jar. It is the one place
 * that defines the benchmark's domains, so the hook calls, the bulk installs and the seed-style
 * ruleset all describe the same VMs.
 *
 * <pre>
 *   xml DIR FIRST COUNT NICS [TAP,TAP...]   write DIR/ucb&lt;i&gt;.xml for domains FIRST..FIRST+COUNT-1
 *   install FIRST COUNT NICS SCRIPT         plan COUNT domains with the project's classes
 *                                           (DomainReader, PolicyBuilder, NftBackend, NftScript), write ONE
 *                                           transaction to SCRIPT, apply it with nft -f, record ownership
 *                                           with StateStore exactly as the hook does; prints timings
 *   render I TAP INSTALL REMOVE             the scripts one hook call would run for 1-NIC domain I on TAP
 *                                           (install at start, remove at stopped), for timing nft alone
 *   ident I                                 MAC and IPv4 of domain I's first NIC
 *   node FILE FIRST COUNT TAPS              libvirt test-driver host (test:///FILE) with those domains
 *                                           running, and TAPS: "ip -batch" lines making their taps (bridges
 *                                           with the MAC libvirt gives a tap: first octet fe)
 *   seed SCRIPT FIRST COUNT [TAP:I,...]     seed-000-style table: one iifname/ether saddr/ip saddr accept
 *                                           rule per port in one chain, the listed real ports LAST
 *
 * Traffic to VMs (issue 17), 1-NIC domains whose IPv4 is {@link #inIpv4} and whose rules are MODE:
 * none (no uc:ingress/uc:egress: the delivery filter only), ingress, both (the two VMs' rules for the
 * benchmark's flows, see {@link #rules}), bulk (the example: 6 ingress and 2 egress allows),
 * rules50 (50 ingress allows):
 *   inxml DIR I TAP MODE                    write DIR/ucb&lt;I&gt;.xml
 *   inelems I TAP MODE FILE                 the NIC's inbound set elements (InboundScript.elements), one a line
 *   inprelude FILE                          the inbound tables' prelude (InboundScript.prelude)
 *   inident I                               MAC, IPv4 and IPv6 of inbound domain I
 *   ininstall FIRST COUNT SCRIPT [perline]  COUNT bulk domains: the anti-spoofing rules in one nft -f (as
 *                                           install), then the inbound prelude and every NIC's elements
 *                                           in a second, grouped per set as the hook renders them
 *                                           (InboundScript.add; perline: one add element per element, the
 *                                           renderer before the grouping); records both as the hook does
 * </pre>
 *
 * Config (state_dir, nft) comes from UNCLOUD_HOOK_CONFIG, like the hook's.
 */
public final class BenchGen {
  static final String NS = "https://ungleich.ch/uncloud/hook/1";

  /** Domain i: name, uuid, and per NIC k: MAC, tap, one IPv4, one IPv6 and a routed /64. */
  static String name(int i) {
    return "ucb" + i;
  }

  static String uuid(int i) {
    return String.format("75636200-0000-4000-8000-%012x", i);
  }

  static String mac(int i, int k) {
    return String.format("52:54:%02x:%02x:%02x:%02x", k, (i >> 16) & 255, (i >> 8) & 255, i & 255);
  }

  static String tap(int i, int k) {
    return "vp" + i + "n" + k;
  }

  static String ipv4(int i, int k) {
    String[] nets = {"198.51.100.", "203.0.113.", "192.0.2."};
    return nets[k % 3] + (2 + (i * 8 + k) % 250);
  }

  static String ipv6(int i, int k) {
    return String.format("2001:db8:%x:%x:%x::10", i >> 16, i & 0xffff, k);
  }

  static String routed6(int i, int k) {
    return String.format("2001:db8:%x:%x::/64", 0x8000 + k, i & 0xffff);
  }

  static String domainXml(int i, int nics, List<String> taps) {
    return domainXml(i, nics, taps, null, "");
  }

  /** IPv4 of an inbound domain: the two VMs keep theirs, others get one no VM of the benchmark has. */
  static String inIpv4(int i) {
    if (i < 2) {
      return ipv4(i, 0);
    }
    if (i >= 60000) {
      return "198.51.100." + (200 + i % 40); // the control plane's domains: shared with no other port
    }
    // documentation addresses only: 508 distinct ones for the bulk ports, none of them the two VMs'
    return (i % 2 == 0 ? "192.0.2." : "203.0.113.") + (1 + (i / 2) % 254);
  }

  /** The uc:ingress/uc:egress of a 1-NIC inbound domain in MODE (VM1 = domain 0, VM2 = domain 1). */
  static String rules(int i, String mode) {
    String vm1v4 = ipv4(0, 0);
    String vm1v6 = ipv6(0, 0);
    switch (mode) {
      case "none":
        return "";
      case "bulk":
        // the example
        return "<uc:ingress><uc:allow protocol='tcp' port='22' from='198.51.100.0/24'/><uc:allow protocol='tcp' port='80-81'/>"
            + "<uc:allow protocol='udp' port='53' from='2001:db8::/32'/><uc:allow protocol='icmp'/>"
            + "<uc:allow protocol='icmpv6'/><uc:allow from='203.0.113.7'/></uc:ingress>"
            + "<uc:egress><uc:allow protocol='tcp' port='443' to='0.0.0.0/0'/><uc:allow protocol='udp' port='53'/></uc:egress>";
      case "rules50": {
        StringBuilder b = new StringBuilder("<uc:ingress>");
        for (int k = 0; k < 50; k++) {
          String from = k % 2 == 0 ? "198.51.100." + (k * 4) + "/30" : String.format("2001:db8:%x::/48", 0x100 + k);
          b.append("<uc:allow protocol='").append(k % 5 == 4 ? "udp" : "tcp").append("' port='").append(1000 + 10 * k)
              .append(k % 3 == 0 ? "-" + (1005 + 10 * k) : "").append("' from='").append(from).append("'/>");
        }
        return b.append("</uc:ingress>").toString();
      }
      case "ingress":
      case "both":
        boolean both = mode.equals("both");
        if (i == 0) {
          return "<uc:ingress><uc:allow protocol='tcp' port='22'/></uc:ingress>"
              + (both ? "<uc:egress><uc:allow protocol='udp' port='5201'/><uc:allow protocol='tcp' port='5301'/></uc:egress>" : "");
        }
        return "<uc:ingress><uc:allow protocol='udp' port='5201' from='" + vm1v4 + "'/><uc:allow protocol='udp' port='5201' from='"
            + vm1v6 + "'/><uc:allow protocol='tcp' port='5301' from='" + vm1v4 + "'/><uc:allow protocol='tcp' port='5301' from='"
            + vm1v6 + "'/><uc:allow protocol='udp' port='5203'/></uc:ingress>"
            + (both ? "<uc:egress><uc:allow protocol='udp' port='53'/></uc:egress>" : "");
      default:
        throw new IllegalArgumentException("unknown rules mode " + mode);
    }
  }

  static String inXml(int i, String tap, String mode) {
    return domainXml(i, 1, tap == null ? null : List.of(tap), inIpv4(i), rules(i, mode));
  }

  static String domainXml(int i, int nics, List<String> taps, String v4, String rules) {
    StringBuilder b = new StringBuilder();
    b.append("<domain type='kvm'>\n  <name>").append(name(i)).append("</name>\n  <uuid>").append(uuid(i))
        .append("</uuid>\n  <metadata>\n    <uc:firewall xmlns:uc=\"").append(NS).append("\">\n");
    for (int k = 0; k < nics; k++) {
      b.append("      <uc:interface mac=\"").append(mac(i, k)).append("\">")
          .append("<uc:ip address=\"").append(v4 != null && k == 0 ? v4 : ipv4(i, k)).append("\"/>")
          .append("<uc:ip address=\"").append(ipv6(i, k)).append("\"/>")
          .append("<uc:ip address=\"").append(routed6(i, k)).append("\"/>")
          .append(rules).append("</uc:interface>\n");
    }
    b.append("    </uc:firewall>\n  </metadata>\n  <devices>\n");
    for (int k = 0; k < nics; k++) {
      String tap = taps != null && k < taps.size() ? taps.get(k) : tap(i, k);
      b.append("    <interface type='bridge'>\n      <mac address='").append(mac(i, k))
          .append("'/>\n      <source bridge='br0'/>\n");
      if (!tap.equals("-")) {
        b.append("      <target dev='").append(tap).append("'/>\n");
      }
      b.append("      <model type='virtio'/>\n      <alias name='net").append(k).append("'/>\n    </interface>\n");
    }
    b.append("  </devices>\n</domain>\n");
    return b.toString();
  }

  public static void main(String[] a) throws Exception {
    switch (a[0]) {
      case "xml" -> xml(a);
      case "install" -> install(a);
      case "seed" -> seed(a);
      case "render" -> render(a);
      case "node" -> node(a);
      case "inxml" -> {
        Files.createDirectories(Path.of(a[1]));
        int i = Integer.parseInt(a[2]);
        Files.writeString(Path.of(a[1], name(i) + ".xml"), inXml(i, a[3], a[4]), StandardCharsets.UTF_8);
      }
      case "inelems" -> {
        int i = Integer.parseInt(a[1]);
        NicPolicy nic = PolicyBuilder.build(DomainReader.read(inXml(i, a[2], a[3])), ConfigFile.load(System.getenv()))
            .nics().get(0);
        Files.writeString(Path.of(a[4]), String.join("\n", InboundScript.elements(nic)) + "\n", StandardCharsets.UTF_8);
      }
      case "inident" -> System.out.println(mac(Integer.parseInt(a[1]), 0) + " " + inIpv4(Integer.parseInt(a[1])) + " "
          + ipv6(Integer.parseInt(a[1]), 0));
      case "inprelude" -> Files.writeString(Path.of(a[1]), String.join("\n", InboundScript.prelude()) + "\n",
          StandardCharsets.UTF_8);
      case "ininstall" -> inInstall(a);
      case "ident" -> System.out.println(mac(Integer.parseInt(a[1]), 0) + " " + ipv4(Integer.parseInt(a[1]), 0));
      default -> throw new IllegalArgumentException("unknown command " + a[0]);
    }
  }

  static void xml(String[] a) throws IOException {
    Path dir = Path.of(a[1]);
    int first = Integer.parseInt(a[2]);
    int count = Integer.parseInt(a[3]);
    int nics = Integer.parseInt(a[4]);
    List<String> taps = a.length > 5 ? List.of(a[5].split(",")) : null;
    Files.createDirectories(dir);
    for (int i = first; i < first + count; i++) {
      Files.writeString(dir.resolve(name(i) + ".xml"), domainXml(i, nics, taps), StandardCharsets.UTF_8);
    }
  }

  static void node(String[] a) throws IOException {
    int first = Integer.parseInt(a[2]);
    int count = Integer.parseInt(a[3]);
    StringBuilder b = new StringBuilder("<node>\n");
    StringBuilder taps = new StringBuilder();
    for (int i = first; i < first + count; i++) {
      String d = domainXml(i, 1, null).replace("<domain type='kvm'>", "<domain type='test'>")
          .replace("  <metadata>", "  <memory>65536</memory>\n  <os><type>hvm</type></os>\n  <metadata>");
      b.append(d);
      taps.append("link add ").append(tap(i, 0)).append(" address fe").append(mac(i, 0).substring(2))
          .append(" type bridge\n");
    }
    b.append("</node>\n");
    Files.writeString(Path.of(a[1]), b, StandardCharsets.UTF_8);
    Files.writeString(Path.of(a[4]), taps, StandardCharsets.UTF_8);
  }

  static void install(String[] a) throws Exception {
    long t0 = System.nanoTime();
    int first = Integer.parseInt(a[1]);
    int count = Integer.parseInt(a[2]);
    int nics = Integer.parseInt(a[3]);
    Path scriptFile = Path.of(a[4]);
    Config config = ConfigFile.load(System.getenv());
    StateStore state = new StateStore(config.stateDir(), config.lockTimeoutSeconds());
    String prelude = new NftScript().prelude().render();
    StringBuilder script = new StringBuilder(prelude);
    List<String> uuids = new ArrayList<>();
    List<Plan> plans = new ArrayList<>();
    long chains = 0;
    // ownership as it will be after each plan, so later domains see earlier claims (as sequential hooks would)
    Map<String, Owner> owners = new HashMap<>();
    try (StateStore.Lock l = state.lock()) {
      for (int i = first; i < first + count; i++) {
        DomainPolicy p = PolicyBuilder.build(DomainReader.read(domainXml(i, nics, null)), config);
        Plan plan = NftBackend.start(p, state.taps(p.uuid()), t -> owners.containsKey(t) ? owners.get(t) : state.owner(t));
        for (String t : plan.release()) {
          owners.put(t, null);
        }
        owners.putAll(plan.claim());
        String s = plan.script();
        s = s.startsWith(prelude) ? s.substring(prelude.length()) : s;
        script.append(s);
        chains += plan.claim().size();
        uuids.add(p.uuid());
        plans.add(plan);
      }
      long t1 = System.nanoTime();
      Files.writeString(scriptFile, script, StandardCharsets.UTF_8);
      ProcessBuilder pb = new ProcessBuilder(config.nft(), "-f", scriptFile.toString()).inheritIO();
      long t2 = System.nanoTime();
      int rc = pb.start().waitFor();
      long t3 = System.nanoTime();
      if (rc != 0) {
        System.err.println("BenchGen: nft -f " + scriptFile + " failed with " + rc);
        System.exit(3);
      }
      for (int j = 0; j < plans.size(); j++) {
        state.commit(uuids.get(j), plans.get(j));
      }
      long t4 = System.nanoTime();
      System.out.printf(
          "domains=%d chains=%d lines=%d plan_ms=%.1f nft_ms=%.1f commit_ms=%.1f total_ms=%.1f%n",
          count, chains, script.chars().filter(c -> c == '\n').count(), (t1 - t0) / 1e6, (t3 - t2) / 1e6,
          (t4 - t3) / 1e6, (t4 - t0) / 1e6);
    }
  }

  /** Bulk inbound domains: anti-spoofing in one nft -f, then the inbound prelude and elements in another. */
  static void inInstall(String[] a) throws Exception {
    long t0 = System.nanoTime();
    int first = Integer.parseInt(a[1]);
    int count = Integer.parseInt(a[2]);
    Path scriptFile = Path.of(a[3]);
    boolean perLine = a.length > 4 && a[4].equals("perline");
    Config config = ConfigFile.load(System.getenv());
    StateStore state = new StateStore(config.stateDir(), config.lockTimeoutSeconds());
    String prelude = new NftScript().prelude().render();
    StringBuilder script = new StringBuilder(prelude);
    List<String> uuids = new ArrayList<>();
    List<Plan> plans = new ArrayList<>();
    List<String> elements = new ArrayList<>();
    Map<String, List<String>> records = new LinkedHashMap<>();
    try (StateStore.Lock l = state.lock()) {
      for (int i = first; i < first + count; i++) {
        DomainPolicy p = PolicyBuilder.build(DomainReader.read(inXml(i, null, "bulk")), config);
        Plan plan = NftBackend.start(p, state.taps(p.uuid()), state::owner);
        String s = plan.script();
        script.append(s.startsWith(prelude) ? s.substring(prelude.length()) : s);
        for (NicPolicy nic : p.nics()) {
          List<String> e = InboundScript.elements(nic);
          elements.addAll(e);
          records.put(nic.tap(), e);
        }
        uuids.add(p.uuid());
        plans.add(plan);
      }
      List<String> in = new ArrayList<>(InboundScript.prelude());
      if (perLine) {
        elements.forEach(e -> in.add("add element " + e));
      } else {
        in.addAll(InboundScript.add(elements));
      }
      long t1 = System.nanoTime();
      Files.writeString(scriptFile, script, StandardCharsets.UTF_8);
      Path inFile = Path.of(scriptFile + ".inbound");
      Files.writeString(inFile, String.join("\n", in) + "\n", StandardCharsets.UTF_8);
      long t2 = System.nanoTime();
      nftFile(config, scriptFile);
      long t3 = System.nanoTime();
      nftFile(config, inFile);
      long t4 = System.nanoTime();
      for (int j = 0; j < plans.size(); j++) {
        state.commit(uuids.get(j), plans.get(j));
      }
      state.commitInbound(records);
      long t5 = System.nanoTime();
      System.out.printf(
          "domains=%d elements=%d inbound_lines=%d plan_ms=%.1f nft_antispoofing_ms=%.1f nft_inbound_ms=%.1f commit_ms=%.1f"
              + " total_ms=%.1f%n",
          count, elements.size(), in.size(), (t1 - t0) / 1e6, (t3 - t2) / 1e6, (t4 - t3) / 1e6, (t5 - t4) / 1e6,
          (t5 - t0) / 1e6);
    }
  }

  static void nftFile(Config config, Path f) throws Exception {
    int rc = new ProcessBuilder(config.nft(), "-f", f.toString()).inheritIO().start().waitFor();
    if (rc != 0) {
      System.err.println("BenchGen: nft -f " + f + " failed with " + rc);
      System.exit(3);
    }
  }

  static void render(String[] a) throws IOException {
    int i = Integer.parseInt(a[1]);
    Config config = ConfigFile.load(System.getenv());
    DomainPolicy p = PolicyBuilder.build(DomainReader.read(domainXml(i, 1, List.of(a[2]))), config);
    Plan start = NftBackend.start(p, List.of(), t -> null);
    Plan stop = NftBackend.stop(p.uuid(), List.of(a[2]), t -> new Owner(p.uuid(), mac(i, 0), name(i)));
    Files.writeString(Path.of(a[3]), start.script(), StandardCharsets.UTF_8);
    Files.writeString(Path.of(a[4]), stop.script(), StandardCharsets.UTF_8);
  }

  /**
   * The seed-000 design at scale: a base chain (toggled on and off by the benchmark) that drops RA and
   * DHCP server answers, then jumps to one chain with one accept rule per port, then drops. The real
   * VMs' rules come last, so their frames walk the whole list, like the worst-placed VM's.
   */
  static void seed(String[] a) throws IOException {
    Path out = Path.of(a[1]);
    int first = Integer.parseInt(a[2]);
    int count = Integer.parseInt(a[3]);
    StringBuilder b = new StringBuilder();
    String t = "bridge ucbseed";
    b.append("add table ").append(t).append("\n");
    b.append("add chain ").append(t).append(" vmlist\n");
    for (int i = first; i < first + count; i++) {
      b.append("add rule ").append(t).append(" vmlist iifname \"").append(tap(i, 0)).append("\" ether saddr ")
          .append(mac(i, 0)).append(" ip saddr ").append(ipv4(i, 0)).append(" accept\n");
    }
    if (a.length > 4) {
      for (String real : a[4].split(",")) {
        String[] f = real.split(":");
        int i = Integer.parseInt(f[1]);
        b.append("add rule ").append(t).append(" vmlist iifname \"").append(f[0]).append("\" ether saddr ")
            .append(mac(i, 0)).append(" ip saddr ").append(ipv4(i, 0)).append(" accept\n");
      }
    }
    Files.writeString(out, b, StandardCharsets.UTF_8);
  }
}
