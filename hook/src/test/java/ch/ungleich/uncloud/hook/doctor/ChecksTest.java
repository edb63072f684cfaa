package ch.ungleich.uncloud.hook.doctor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.doctor.Check.Status;
import ch.ungleich.uncloud.hook.host.DomainView;
import ch.ungleich.uncloud.hook.host.LinuxHost.FileInfo;
import ch.ungleich.uncloud.hook.libvirt.LibvirtSession;
import ch.ungleich.uncloud.hook.model.VmTaps;
import ch.ungleich.uncloud.hook.nft.NftBackend;
import ch.ungleich.uncloud.hook.nft.ReconcilePlan;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

class ChecksTest {
  static final String OURS =
      "#!/bin/sh\nexec /usr/lib/jvm/java-17-openjdk-amd64/bin/java -jar /usr/lib/uncloud-hook/uncloud-hook.jar hook \"$@\"\n";

  static FileInfo file(String path, boolean executable, long ctime, String content) {
    return new FileInfo(path, true, true, false, executable, ctime, ctime, content);
  }

  static FileInfo absent(String path) {
    return new FileInfo(path, false, false, false, false, 0, 0, null);
  }

  static Checks.HookFiles hooks(FileInfo main, FileInfo... dropins) {
    return new Checks.HookFiles("/etc/libvirt/hooks", main, List.of(dropins));
  }

  @Test
  void hookPassesInMainPlaceOrQemuD() {
    Checks.HookResult a = Checks.hook(hooks(file("/etc/libvirt/hooks/qemu", true, 1, OURS)));
    assertEquals(Status.PASS, a.checks().get(0).status());
    assertNotNull(a.launcher());
    Checks.HookResult b =
        Checks.hook(
            hooks(
                file("/etc/libvirt/hooks/qemu", true, 1, "#!/bin/sh\nexit 0\n"),
                file("/etc/libvirt/hooks/qemu.d/uncloud-hook", true, 2, OURS)));
    assertEquals(Status.PASS, b.checks().get(0).status());
    assertEquals("/etc/libvirt/hooks/qemu.d/uncloud-hook", b.file().path());
  }

  @Test
  void hookMissingForeignOrNotExecutable() {
    Check missing = Checks.hook(hooks(absent("/etc/libvirt/hooks/qemu"))).checks().get(0);
    assertEquals(Status.FAIL, missing.status());
    assertTrue(missing.fix().contains("install"), missing.fix());
    Check foreign = Checks.hook(hooks(file("/etc/libvirt/hooks/qemu", true, 1, "#!/bin/sh\nexit 0\n"))).checks().get(0);
    assertEquals(Status.FAIL, foreign.status());
    assertTrue(foreign.fix().contains("/etc/libvirt/hooks/qemu.d/uncloud-hook"), foreign.fix());
    Check noexec = Checks.hook(hooks(file("/etc/libvirt/hooks/qemu", false, 1, OURS))).checks().get(0);
    assertEquals(Status.FAIL, noexec.status());
    assertTrue(noexec.fix().startsWith("chmod 755 /etc/libvirt/hooks/qemu"), noexec.fix());
    List<Check> twice =
        Checks.hook(hooks(file("/etc/libvirt/hooks/qemu", true, 1, OURS), file("/etc/libvirt/hooks/qemu.d/u", true, 1, OURS)))
            .checks();
    assertEquals(Status.WARN, twice.get(0).status());
    assertEquals("rm /etc/libvirt/hooks/qemu.d/u", twice.get(0).fix());
  }

  @Test
  void javaAndJar() {
    Launcher l = Launcher.parse(OURS);
    FileInfo java = file(l.java(), true, 1, null);
    assertEquals(Status.PASS, Checks.java(l, java, "openjdk version \"17.0.15\" 2025-04-15").status());
    Check old = Checks.java(l, java, "openjdk version \"11.0.2\"");
    assertEquals(Status.FAIL, old.status());
    assertTrue(old.found().contains("java 11"), old.found());
    assertEquals(Status.FAIL, Checks.java(l, absent(l.java()), null).status());
    Launcher relative = Launcher.parse("#!/bin/sh\nexec java -jar /x/uncloud-hook.jar hook \"$@\"\n");
    assertEquals(Status.FAIL, Checks.java(relative, java, "openjdk version \"17\"").status());
    assertEquals(Status.FAIL, Checks.jar(l, absent(l.jar())).status());
    assertEquals(Status.PASS, Checks.jar(l, file(l.jar(), false, 1, null)).status());
  }

  @Test
  void libvirtdStartedBeforeOrAfterTheHook() {
    Checks.HookFiles f = hooks(file("/etc/libvirt/hooks/qemu", true, 5_000, OURS));
    assertEquals(Status.PASS, Checks.libvirtdSawHook(f, new Checks.Daemon(42L, "pid file", 6_000L), null, null, "/run/uncloud-hook").status());
    Check before = Checks.libvirtdSawHook(f, new Checks.Daemon(42L, "pid file", 4_000L), null, null, "/run/uncloud-hook");
    assertEquals(Status.WARN, before.status());
    assertTrue(before.fix().contains("kill -HUP 42 && echo \"42 $(date +%s)\" >> /run/uncloud-hook/libvirtd-sighup"), before.fix());
    // a SIGHUP recorded after the hook appeared: libvirtd looked again
    assertEquals(Status.PASS, Checks.libvirtdSawHook(f, new Checks.Daemon(42L, "pid file", 4_000L), null, 5_500L, "/s").status());
    assertEquals(Status.WARN, Checks.libvirtdSawHook(f, new Checks.Daemon(42L, "pid file", 4_000L), null, 4_500L, "/s").status());
    // the hook logged a call after libvirtd started: it is being called
    assertEquals(Status.PASS, Checks.libvirtdSawHook(f, new Checks.Daemon(42L, "pid file", 4_000L), 4_500L, null, "/run/uncloud-hook").status());
    // an older executable hook (someone else's qemu) registered the hook dir at start
    Checks.HookFiles both =
        hooks(file("/etc/libvirt/hooks/qemu", true, 1_000, "#!/bin/sh\n"), file("/etc/libvirt/hooks/qemu.d/uncloud-hook", true, 5_000, OURS));
    assertEquals(Status.PASS, Checks.libvirtdSawHook(both, new Checks.Daemon(42L, "pid file", 4_000L), null, null, "/run/uncloud-hook").status());
    assertEquals(Status.WARN, Checks.libvirtdSawHook(f, new Checks.Daemon(null, "no libvirtd process", null), null, null, "/s").status());
  }

  static final String DOM =
      "<domain type='qemu'><name>%s</name><uuid>%s</uuid><metadata>%s</metadata><devices>"
          + "<interface type='%s'><mac address='%s'/><target dev='%s'/><alias name='net0'/></interface></devices></domain>";

  static String meta(String mac, String... ips) {
    StringBuilder b = new StringBuilder("<uc:firewall xmlns:uc='https://ungleich.ch/uncloud/hook/1'><uc:interface mac='" + mac + "'>");
    for (String ip : ips) {
      b.append("<uc:ip address='").append(ip).append("'/>");
    }
    return b.append("</uc:interface></uc:firewall>").toString();
  }

  static DomainView view(String name, int n, String type, String liveMeta, String configMeta) {
    String uuid = "11111111-2222-4333-8444-00000000000" + n;
    String mac = "52:54:00:00:00:0" + n;
    String live = liveMeta == null ? null : String.format(DOM, name, uuid, liveMeta, type, mac, "vnet" + n);
    String config = String.format(DOM, name, uuid, configMeta == null ? "" : configMeta, type, mac, "vnet" + n).replace("<target dev='vnet" + n + "'/>", "");
    return DomainView.of(new LibvirtSession.DomainXml(name, uuid, live != null, live != null ? live : config, config), Config.defaults());
  }

  @Test
  void domainsAndNics() {
    String m1 = meta("52:54:00:00:00:01", "192.0.2.1");
    DomainView good = view("good", 1, "bridge", m1, m1);
    DomainView bare = view("bare", 2, "bridge", "", "");
    DomainView tap = view("macvtap", 3, "direct", meta("52:54:00:00:00:03", "192.0.2.3"), meta("52:54:00:00:00:03", "192.0.2.3"));
    DomainView differ = view("differ", 4, "bridge", meta("52:54:00:00:00:04", "192.0.2.4"), meta("52:54:00:00:00:04", "192.0.2.40"));
    DomainView gone = view("gone", 5, "bridge", meta("52:54:00:00:00:05", "192.0.2.5"), meta("52:54:00:00:00:05", "192.0.2.5"));
    Map<String, String> links = Map.of("vnet1", "fe:54:00:00:00:01", "vnet2", "fe:54:00:00:00:02", "vnet4", "fe:54:00:00:00:04");
    List<Check> c = Checks.domains(List.of(good, bare, tap, differ, gone), Config.defaults(), links::get, "qemu:///system");
    List<String> got = c.stream().map(x -> x.status() + " " + x.id() + " " + x.subject()).toList();
    assertEquals(
        List.of(
            "PASS nic good net0 52:54:00:00:00:01",
            "WARN nic-metadata bare net0 52:54:00:00:00:02",
            "WARN nic-type macvtap net0 52:54:00:00:00:03",
            "WARN metadata-agree differ",
            "PASS nic differ net0 52:54:00:00:00:04",
            "FAIL nic-tap gone net0 52:54:00:00:00:05"),
        got);
    Check agree = c.get(3);
    assertTrue(agree.fix().contains("virsh metadata differ --uri https://ungleich.ch/uncloud/hook/1 --key uc --config --set"), agree.fix());
  }

  @Test
  void invalidMetadataFails() {
    DomainView bad = view("bad", 6, "bridge", meta("52:54:00:00:00:06", "192.0.2.300"), "");
    assertNull(bad.policy());
    Check c = Checks.domains(List.of(bad), Config.defaults(), t -> "x", "qemu:///system").get(0);
    assertEquals(Status.FAIL, c.status());
    assertEquals("domain-metadata", c.id());
  }

  @Test
  void conflicts() {
    DomainView a = view("a", 1, "bridge", meta("52:54:00:00:00:01", "192.0.2.10", "2001:db8::/64"), "");
    DomainView b = view("b", 2, "bridge", meta("52:54:00:00:00:02", "192.0.2.10"), "");
    DomainView c = view("c", 3, "bridge", null, meta("52:54:00:00:00:03", "2001:db8::5"));
    List<Check> got = Checks.conflicts(List.of(a, b, c));
    assertEquals(2, got.size());
    assertEquals(Status.FAIL, got.get(0).status());
    assertTrue(got.get(0).found().startsWith("192.0.2.10 claimed by a (52:54:00:00:00:01) and b"), got.get(0).found());
    assertEquals(Status.WARN, got.get(1).status()); // c is not running
    assertEquals(Status.PASS, Checks.conflicts(List.of(a)).get(0).status());
    assertEquals(List.of("192.0.2.10 overlaps 192.0.2.10 of a (52:54:00:00:00:01, running)"),
        Checks.conflictsWith("b", b.metadata(), List.of(a, b, c)));
  }

  @Test
  void driftAndStale() {
    ReconcilePlan clean = new ReconcilePlan("", List.of(), List.of(), Map.of());
    assertEquals(List.of(Status.PASS, Status.PASS), Checks.drift(clean, 3).stream().map(Check::status).toList());
    ReconcilePlan dirty =
        new ReconcilePlan(
            "x",
            List.of(
                new ReconcilePlan.Change("update", "vnet1", "vm1", "u", "rules differ; missing: 'own IPv4'"),
                new ReconcilePlan.Change("remove", "vnet9", null, null, "interface vnet9 no longer exists")),
            List.of(), Map.of());
    List<Check> d = Checks.drift(dirty, 3);
    assertEquals(List.of("FAIL drift", "WARN stale"), d.stream().map(x -> x.status() + " " + x.id()).toList());
    assertEquals("uncloud-hook reconcile", d.get(0).fix());
    // a fresh host: no table and no filtered NIC is not drift (the first 'start begin' creates it) ...
    ReconcilePlan fresh =
        new ReconcilePlan(
            "x", List.of(new ReconcilePlan.Change("prelude", null, null, null, "table uncloud was missing")),
            List.of(), Map.of());
    assertEquals(List.of(Status.PASS, Status.PASS), Checks.drift(fresh, 0).stream().map(Check::status).toList());
    // ... but with a filtered NIC it is
    assertEquals(Status.FAIL, Checks.drift(fresh, 1).get(0).status());
    // the inbound tables (issue 17): a missing element is drift of its tap, a changed chain of the tables
    ReconcilePlan inbound =
        new ReconcilePlan(
            "x",
            List.of(
                new ReconcilePlan.Change("inbound", "vnet1", "vm1", "u", "1 inbound set element missing: macs { \"vnet1\" . 52:54:00:aa:bb:01 }"),
                new ReconcilePlan.Change("inbound", null, null, null, "chain inet uncloud-inbound ingress-decide was missing")),
            List.of(), Map.of());
    List<Check> in = Checks.drift(inbound, 1);
    assertEquals(List.of("FAIL drift vnet1 (vm1)", "FAIL drift tables uncloud-inbound", "PASS stale null"),
        in.stream().map(x -> x.status() + " " + x.id() + " " + x.subject()).toList());
    assertEquals("uncloud-hook reconcile", in.get(1).fix());
  }

  @Test
  void nwfilterTemplatesAndFilterrefs() {
    List<ch.ungleich.uncloud.hook.nwfilter.Templates.Template> ours = ch.ungleich.uncloud.hook.nwfilter.Templates.all();
    Map<String, String> defined = new java.util.HashMap<>();
    ours.forEach(t -> defined.put(t.name(), t.withUuid("11111111-2222-4333-8444-555555555555")));
    List<Check> ok = Checks.nwfilterTemplates(ours, defined);
    assertEquals(List.of(Status.PASS), ok.stream().map(Check::status).toList());
    defined.put(ours.get(0).name(), null);
    defined.put(ours.get(1).name(), ours.get(1).xml().replaceFirst("priority='-?[0-9]+'", "priority='1'"));
    List<Check> bad = Checks.nwfilterTemplates(ours, defined);
    assertEquals(2, bad.size(), bad.toString());
    assertTrue(bad.get(0).found().startsWith("not defined"), bad.get(0).found());
    assertTrue(bad.get(1).found().startsWith("defined, but differs"), bad.get(1).found());
    assertEquals("uncloud-hook nwfilter install", bad.get(0).fix());

    // a running NIC without its filterref: FAIL with the sync command; the persistent definition too: WARN
    DomainView d = view("nw", 7, "bridge", meta("52:54:00:00:00:07", "192.0.2.7"), meta("52:54:00:00:00:07", "192.0.2.7"));
    List<Check> drift = Checks.nwfilterDrift(List.of(d), Config.defaults());
    assertEquals(List.of("FAIL drift nw", "WARN drift nw (persistent)"),
        drift.stream().map(x -> x.status() + " " + x.id() + " " + x.subject()).toList());
    assertEquals("uncloud-hook sync nw", drift.get(0).fix());
    assertTrue(drift.get(0).found().contains("has no filterref, needs uncloud-clean-traffic"), drift.get(0).found());
    assertEquals(Status.WARN, Checks.nftLeftover(true, 3).status());
    assertEquals(Status.PASS, Checks.nftLeftover(false, 0).status());
  }

  @Test
  void tcpLooseWarnsOnlyWhereInboundRulesNeedIt() {
    assertEquals(List.of(), Checks.tcpLoose("0", List.of()));
    assertEquals(List.of(), Checks.tcpLoose("1", List.of("web01 net0")));
    assertEquals(List.of(), Checks.tcpLoose(null, List.of("web01 net0")));
    List<Check> w = Checks.tcpLoose("0", List.of("web01 net0"));
    assertEquals(1, w.size());
    assertEquals(Status.WARN, w.get(0).status());
    assertEquals("net.netfilter.nf_conntrack_tcp_loose", w.get(0).subject());
    assertTrue(w.get(0).found().contains("web01 net0 opened on another host stall"), w.get(0).found());
    assertTrue(w.get(0).fix().startsWith("sysctl -w net.netfilter.nf_conntrack_tcp_loose=1"), w.get(0).fix());
  }

  @Test
  void sysctlAndExitCodes() {
    List<Check> s = Checks.bridgeNfCall("1", null);
    assertEquals(Status.WARN, s.get(0).status());
    assertTrue(s.get(0).fix().startsWith("sysctl -w net.bridge.bridge-nf-call-iptables=0"));
    assertEquals(Status.PASS, s.get(1).status());
    // with uc:ingress / uc:egress on a NIC the sysctls must be 1: else their IP is dropped (fail closed)
    List<Check> st = Checks.bridgeNfCall("1", "0", List.of("web01 net0"));
    assertEquals(Status.PASS, st.get(0).status());
    assertTrue(st.get(0).found().contains("needed by uc:ingress/uc:egress of web01 net0"), st.get(0).found());
    assertEquals(Status.FAIL, st.get(1).status());
    assertTrue(st.get(1).fix().startsWith("sysctl -w net.bridge.bridge-nf-call-ip6tables=1"), st.get(1).fix());
    assertTrue(Checks.bridgeNfCall(null, null, List.of("a", "b", "c", "d")).get(0).fix().startsWith("modprobe br_netfilter"));
    // the kernel path, said once: this kernel (both built in / absent) and Debian's (modules)
    Checks.KernelPaths here = new Checks.KernelPaths("built in", "absent");
    List<Check> k = Checks.bridgeNfCall("1", "1", List.of("web01 net0"), here);
    assertEquals("= 1: needed by uc:ingress/uc:egress of web01 net0; kernel path: br_netfilter (built in) passes bridged IP"
        + " through table inet uncloud-inbound, where conntrack works; nf_conntrack_bridge is not in this kernel (ct in a bridge"
        + " table fails), so this is the only path here", k.get(0).found());
    assertTrue(k.get(1).found().endsWith("(path: br_netfilter passes bridged IPv6 through table inet uncloud-inbound, where"
        + " conntrack works; nf_conntrack_bridge is not used)"), k.get(1).found());
    Checks.KernelPaths debian = new Checks.KernelPaths("loaded", "module");
    assertTrue(Checks.bridgeNfCall("1", "1", List.of("web01 net0"), debian).get(0).found().endsWith("br_netfilter (loaded)"
        + " passes bridged IP through table inet uncloud-inbound, where conntrack works; nf_conntrack_bridge is available as a"
        + " module (not loaded): detected, not used (conntrack in the bridge table would save br_netfilter's pass; not"
        + " implemented, see docs/design.md#traffic-to-vms)"));
    Check notLoaded = Checks.bridgeNfCall(null, null, List.of("web01 net0"), new Checks.KernelPaths("module", "module")).get(0);
    assertEquals(Status.FAIL, notLoaded.status());
    assertTrue(notLoaded.found().endsWith("; kernel: br_netfilter module, nf_conntrack_bridge module"), notLoaded.found());
    assertTrue(notLoaded.fix().startsWith("modprobe br_netfilter; sysctl -w"), notLoaded.fix());
    Check none = Checks.bridgeNfCall(null, null, List.of("web01 net0"), new Checks.KernelPaths("absent", "absent")).get(0);
    assertTrue(none.fix().startsWith("this kernel has no br_netfilter (CONFIG_BRIDGE_NETFILTER)"), none.fix());
    // backend = nwfilter: libvirt's iptables rules are not applied without br_netfilter: FAIL, fail open
    List<Check> nw = Checks.bridgeNfCall("0", "1", List.of("web01 net0"), null, true);
    assertEquals(Status.FAIL, nw.get(0).status());
    assertEquals("= 0: backend = nwfilter enforces the uc:ingress/uc:egress rules of web01 net0 with libvirt's iptables"
        + " rules, which bridged IPv4 reaches only through br_netfilter; until then their IPv4 is NOT filtered by these"
        + " rules (nwfilter fails open)", nw.get(0).found());
    assertTrue(nw.get(0).fix().startsWith("sysctl -w net.bridge.bridge-nf-call-iptables=1"), nw.get(0).fix());
    assertEquals(Status.PASS, nw.get(1).status());
    assertTrue(nw.get(1).found().contains("backend = nwfilter: libvirt's ip6tables rules"), nw.get(1).found());
    assertTrue(Checks.bridgeNfCall(null, null, List.of("web01 net0"), null, true).get(0).fix().startsWith("modprobe br_netfilter"));
    // without rules on any NIC nwfilter is like nft: 1 is only a warning
    assertEquals(Status.WARN, Checks.bridgeNfCall("1", "0", List.of(), null, true).get(0).status());
    assertEquals(0, Checks.exitCode(List.of(Check.pass("a", null, "x"))));
    assertEquals(1, Checks.exitCode(List.of(Check.pass("a", null, "x"), Check.warn("b", null, "y", "z"))));
    assertEquals(2, Checks.exitCode(List.of(Check.fail("a", null, "x", "f"), Check.warn("b", null, "y", "z"))));
  }

  @Test
  void guardIsConfiguredInstalledAndCoversEveryTapOnABridge() {
    VmTaps vnet = VmTaps.parse("vnet*");
    String conf = "/etc/uncloud-hook/uncloud-hook.conf";
    Map<String, String> taps = Map.of("vnet0", "br0");
    List<Check> ok = Checks.guard(vnet, conf, List.of("vnet*"), taps, Set.of(), 1);
    assertEquals(List.of(Status.PASS), ok.stream().map(Check::status).toList());
    assertEquals(Status.PASS, Checks.guard(vnet, conf, null, Map.of(), Set.of(), 0).get(0).status());

    Check missing = Checks.guard(vnet, conf, List.of(), taps, Set.of(), 1).get(0);
    assertEquals(Status.WARN, missing.status());
    assertEquals("uncloud-hook reconcile", missing.fix());

    Check off = Checks.guard(VmTaps.none(), conf, List.of(), Map.of(), Set.of(), 1).get(0);
    assertEquals(Status.WARN, off.status());
    assertTrue(off.fix().contains("vm_taps = vnet*"), off.fix());

    // a tap named by <target dev> outside the patterns, without rules: forwarded unfiltered
    List<Check> named = Checks.guard(vnet, conf, List.of("vnet*"), Map.of("tap-web01", "br0", "tap-db", "br1"),
        Set.of("tap-db"), 1);
    assertEquals(1, named.size(), named.toString());
    assertEquals("tap-web01 (bridge br0)", named.get(0).subject());
    assertTrue(named.get(0).fix().contains("vm_taps = vnet*, tap-web*"), named.get(0).fix());
  }

  @Test
  void aMissingGuardIsTheGuardChecksNotDrift() {
    ReconcilePlan p = new ReconcilePlan("x", List.of(new ReconcilePlan.Change("prelude", null, null, null,
        NftBackend.GUARD_MISSING + ": added with every running VM's elements")), List.of(), Map.of());
    List<Check> c = Checks.drift(p, 2);
    assertEquals(List.of("PASS drift", "PASS stale"), c.stream().map(x -> x.status() + " " + x.id()).toList());
  }

  @Test
  void etcdEndpointsAndMissingKeys() {
    Map<String, String> some = new java.util.LinkedHashMap<>();
    some.put("http://192.0.2.1:2379", "version 3.4.23");
    some.put("http://192.0.2.2:2379", "unreachable: Connection refused");
    List<Check> c = Checks.etcd(some, Map.of("web01", "distributed-firewall/vm/u1"), "deny");
    assertEquals(List.of(Status.PASS, Status.WARN, Status.WARN), c.stream().map(Check::status).toList());
    assertTrue(c.get(2).line().contains("no key distributed-firewall/vm/u1: every NIC gets unlisted = deny"), c.get(2).line());
    assertTrue(c.get(2).fix().startsWith("uncloud-hook etcd put web01"));
    List<Check> none = Checks.etcd(Map.of("http://192.0.2.2:2379", "unreachable: timed out"), Map.of(), "deny");
    assertEquals(Status.FAIL, none.get(0).status());
    assertTrue(none.get(0).found().contains("refuses every start"), none.get(0).found());
  }

  /** source = etcd: the fix for a NIC that gets unlisted is the etcd key, not the XML metadata. */
  @Test
  void withEtcdTheFixIsTheKey() {
    DomainView bare = view("bare", 2, "bridge", "", "");
    Config etcd = Config.parse("source = etcd\netcd_endpoints = http://192.0.2.1:2379\n", "t");
    Check c = Checks.domains(List.of(bare), etcd, t -> "fe:54:00:00:00:02", "qemu:///system").get(0);
    assertEquals("nic-metadata", c.id());
    assertTrue(c.found().startsWith("not in its etcd key: unlisted=deny"), c.found());
    assertTrue(c.fix().startsWith("uncloud-hook etcd put bare --file VALUE"), c.fix());
  }
}
