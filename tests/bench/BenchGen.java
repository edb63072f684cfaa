import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.config.ConfigFile;
import ch.ungleich.uncloud.hook.metadata.PolicyBuilder;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
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
    StringBuilder b = new StringBuilder();
    b.append("<domain type='kvm'>\n  <name>").append(name(i)).append("</name>\n  <uuid>").append(uuid(i))
        .append("</uuid>\n  <metadata>\n    <uc:firewall xmlns:uc=\"").append(NS).append("\">\n");
    for (int k = 0; k < nics; k++) {
      b.append("      <uc:interface mac=\"").append(mac(i, k)).append("\">")
          .append("<uc:ip address=\"").append(ipv4(i, k)).append("\"/>")
          .append("<uc:ip address=\"").append(ipv6(i, k)).append("\"/>")
          .append("<uc:ip address=\"").append(routed6(i, k)).append("\"/>")
          .append("</uc:interface>\n");
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
