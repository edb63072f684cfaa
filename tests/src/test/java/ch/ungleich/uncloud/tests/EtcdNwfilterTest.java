package ch.ungleich.uncloud.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.tests.lab.Cmd;
import ch.ungleich.uncloud.tests.lab.EtcdCluster;
import ch.ungleich.uncloud.tests.lab.LabGuest;
import ch.ungleich.uncloud.tests.lab.LibvirtHost;
import ch.ungleich.uncloud.tests.lab.Observer;
import ch.ungleich.uncloud.tests.lab.TwoHostLab;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * Issue 18 with {@code backend = nwfilter}: libvirt's nwfilter takes the filterref parameters from etcd.
 * One host of the migration lab (private libvirtd with its nwfilter driver), one etcd member on its
 * loopback, the real hook, a TCG guest whose XML metadata is deliberately WRONG (another IPv4, no
 * IPv6), the observer on the bridge.
 *
 * <p>The start is refused while the domain's filterrefs are not what the key says; {@code uncloud-hook
 * sync} writes them from the key, and the guest starts with libvirt filtering exactly the key's
 * addresses (frames). Then {@code uncloud-hook agent}: a key change rewrites the live filterref (the
 * removed address dropped, the added one delivered again, zero spoofed throughout).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class EtcdNwfilterTest {
  static final String PREFIX = "distributed-firewall/vm/";
  static final String WRONG4 = "198.51.100.99";
  /**
   * How soon a key change must be in effect: libvirt rebuilds a NIC's whole filter on a filterref
   * update (one ebtables process per rule, seconds on this machine), as in AgentNwfilterTest.
   */
  static final long WITHIN_MS = 30_000;

  TwoHostLab lab;
  LibvirtHost a;
  LabGuest guest;
  EtcdCluster etcd;
  Path jar;
  Process agent;
  Path agentErr;
  String key;
  Map<String, String> settings;

  @BeforeAll
  void setUp() throws IOException {
    jar = Path.of(System.getProperty("uncloud.jar"));
    assertTrue(Files.isRegularFile(jar), "built hook jar " + jar + " (mvn package first)");
    long t0 = System.nanoTime();
    lab = TwoHostLab.create("uen");
    try {
      long tLab = System.nanoTime();
      a = lab.a();
      etcd = EtcdCluster.start(a.netns(), lab.dir(), 1);
      settings = Map.of("backend", "nwfilter", "agent_resync", "30", "source", "etcd",
          "etcd_endpoints", etcd.endpointsSetting(), "etcd_timeout", "1");
      a.installUncloudHook(jar, settings);
      long tEtcd = System.nanoTime();
      a.start();
      long tLibvirt = System.nanoTime();
      guest = lab.guest(20);
      key = PREFIX + guest.uuid();
      etcd.put(key, value(true));
      String wrong = guest.firewallMetadata().replace(guest.ip4Address(), WRONG4)
          .replaceAll("\\s*<uc:ip address=\"[0-9a-f:]+(/64)?\"/>", "");
      assertFalse(wrong.contains(guest.ip6Address()), wrong);
      Path xml = lab.dir().resolve(guest.name() + ".xml");
      Files.writeString(xml, guest.domainXml(lab.image(), TwoHostLab.BRIDGE, lab.console(guest), wrong));
      a.virsh("define", xml.toString()).check();
      report("nwfilter install: %s", cli("nwfilter", "install").check().out().strip().replace('\n', ' '));
      // the filterrefs of the XML's (wrong) metadata, as a host that used source = metadata has them
      Map<String, String> fromXml = new java.util.HashMap<>(settings);
      fromXml.put("source", "metadata");
      a.writeHookConfig(fromXml);
      report("sync with source = metadata: %s", cli("sync", guest.name()).check().out().strip());
      a.writeHookConfig(settings);
      report("set-up: lab %.1f s, etcd %.1f s, libvirtd %.1f s, nwfilter install and sync %.1f s", (tLab - t0) / 1e9,
          (tEtcd - tLab) / 1e9, (tLibvirt - tEtcd) / 1e9, (System.nanoTime() - tLibvirt) / 1e9);
    } catch (RuntimeException | IOException e) {
      tearDown();
      throw e;
    }
  }

  /** The guest's key: uncloud's form, its IPv4, IPv6 (without it when not {@code v6}) and routed /64. */
  String value(boolean v6) {
    String prefix = guest.net6().replaceAll("::.*", "::/64");
    return "{\"ipv4\": [\"" + guest.ip4Address() + "/32\"], \"ipv6\": [" + (v6 ? "\"" + guest.ip6Address() + "\", " : "")
        + "\"" + prefix + "\"]}";
  }

  @AfterAll
  void tearDown() {
    long t0 = System.nanoTime();
    if (agent != null) {
      agent.destroy();
      try {
        agent.waitFor();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    long tAgent = System.nanoTime();
    if (etcd != null) {
      etcd.close();
    }
    long tEtcd = System.nanoTime();
    if (lab != null) {
      lab.close();
    }
    report("tear-down: agent %.1f s, etcd %.1f s, lab %.1f s", (tAgent - t0) / 1e9, (tEtcd - tAgent) / 1e9,
        (System.nanoTime() - tEtcd) / 1e9);
  }

  @Test
  @Order(1)
  void theFilterrefParametersComeFromEtcd() throws IOException {
    // the filterrefs say the XML's address: prepare compares them with the key and refuses
    assertTrue(filterref(a.virsh("dumpxml", "--inactive", guest.name()).check().out()).contains("value='" + WRONG4 + "'"));
    Cmd.Result refused = a.virsh("start", guest.name());
    report("start before sync: %s", (refused.out() + refused.err()).strip());
    assertFalse(refused.ok(), "refused before sync");
    assertTrue(refused.err().contains("filterrefs disagree") && refused.err().contains("IPv4 [" + WRONG4 + "/32] should be ["
        + guest.ip4Address() + "/32]"), refused.err());

    report("sync: %s", cli("sync", guest.name()).check().out().strip());
    String ref = filterref(a.virsh("dumpxml", "--inactive", guest.name()).check().out());
    assertTrue(ref.contains("value='" + guest.ip4Address() + "'") && ref.contains("value='" + guest.ip6Address() + "'")
        && !ref.contains(WRONG4), "the filterref parameters are the key's: " + ref);

    long since = Observer.nowNs();
    a.virsh("start", guest.name()).check();
    LabGuest.awaitUp(lab.console(guest), 90_000);
    lab.observer().awaitKinds(LabGuest.LEGIT, since, 60_000);
    long t0 = Observer.nowNs();
    sleepMs(1000);
    Observer.Summary s = lab.observer().summary(t0, Observer.nowNs());
    report("started with the key's filterref (the XML metadata says %s, no IPv6), %.1f s from virsh start to all legit"
        + " kinds:%n%s", WRONG4, (t0 - since) / 1e9, s);
    assertEquals(0, s.spoofed(), "zero spoofed:\n" + s);
    for (String k : LabGuest.LEGIT) {
      assertTrue(s.count(k) > 10, k + " from etcd's addresses passes:\n" + s);
    }
  }

  @Test
  @Order(2)
  void theAgentWritesAKeyChangeToTheLiveFilterref() throws IOException {
    startAgent();
    long start = Observer.nowNs();
    // without the IPv6: the live filterref loses it, legit6 dropped from then on
    int applied = countLog(": etcd key changed (revision ");
    long t0 = Observer.nowNs();
    etcd.put(key, value(false));
    long set = Observer.nowNs();
    long done = awaitApplied(applied);
    sleepMs(1000);
    Observer.Summary late = lab.observer().summary(done, Observer.nowNs());
    double removedMs = (lastFrame("legit6", t0) - set) / 1e6;
    report("key without the IPv6: applied %.0f ms after the put (agent's log), last legit6 %.0f ms after it; after:%n%s",
        (done - set) / 1e6, removedMs, late);
    assertEquals(0, late.count("legit6"), "removed address dropped:\n" + late);
    assertTrue(late.count("legit4") > 10, "the rest passes:\n" + late);
    String live = filterref(a.virsh("dumpxml", guest.name()).check().out());
    assertTrue(live.contains("value='" + guest.ip4Address() + "'") && !live.contains("value='" + guest.ip6Address() + "'"),
        "the live filterref lost the IPv6: " + live);

    // with it again: delivered
    applied = countLog(": etcd key changed (revision ");
    long t1 = Observer.nowNs();
    etcd.put(key, value(true));
    long set1 = Observer.nowNs();
    lab.observer().awaitMoreThan(0, set1, WITHIN_MS, "legit6");
    double addedMs = (firstFrame("legit6", t1) - set1) / 1e6;
    awaitApplied(applied);
    sleepMs(1000);
    Observer.Summary all = lab.observer().summary(start, Observer.nowNs());
    report("key with the IPv6 again: first legit6 %.0f ms after the put; spoofed through during both changes: %d", addedMs,
        all.spoofed());
    report("FIGURES nwfilter: etcd key -> address dropped %.0f ms, delivered %.0f ms", removedMs, addedMs);
    assertEquals(0, all.spoofed(), "zero spoofed while libvirt rebuilt the filter (the agent holds the NIC):\n" + all);
    assertTrue(addedMs <= WITHIN_MS, "added address passes");
  }

  // ------------------------------------------------------------------ helpers

  void startAgent() throws IOException {
    agentErr = lab.dir().resolve("agent.err");
    ProcessBuilder pb = new ProcessBuilder("ip", "netns", "exec", a.netns(), "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        "UNCLOUD_HOOK_CONFIG=" + a.hookConfigPath(), LibvirtHost.currentJava().toString(),
        "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-XX:-UsePerfData", "-jar", jar.toString(),
        "agent", "--connect", a.uri());
    pb.redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(agentErr.toFile()));
    agent = pb.start();
    awaitLog("etcd: watching " + PREFIX, 60_000);
    awaitLog("connected: ", 60_000);
  }

  /** Waits for the agent's next "etcd key changed ...: applied" line; returns when it was seen. */
  long awaitApplied(int before) {
    long deadline = System.currentTimeMillis() + WITHIN_MS;
    while (System.currentTimeMillis() < deadline) {
      if (countLog(": etcd key changed (revision ") > before && agentLog().lines()
          .filter(l -> l.contains(": etcd key changed (revision ")).skip(before).anyMatch(l -> l.contains(": applied ("))) {
        return Observer.nowNs();
      }
      sleepMs(20);
    }
    throw new AssertionError("no key change applied within " + WITHIN_MS + " ms:\n" + agentLog());
  }

  /** The (one) filterref element of a domain XML. */
  static String filterref(String xml) {
    int from = xml.indexOf("<filterref");
    int to = xml.indexOf("</filterref>");
    return from < 0 || to < 0 ? "(no filterref)" : xml.substring(from, to);
  }

  Cmd.Result cli(String... args) {
    List<String> argv = new ArrayList<>(List.of("ip", "netns", "exec", a.netns(), "env", "UNCLOUD_HOOK_CONFIG=" + a.hookConfigPath(),
        LibvirtHost.currentJava().toString(), "-jar", jar.toString()));
    argv.addAll(List.of(args));
    argv.addAll(List.of("--connect", a.uri()));
    return Cmd.run(argv, null, null, 120);
  }

  long lastFrame(String kind, long fromNs) {
    long last = fromNs;
    for (Observer.Frame f : lab.observer().frames()) {
      if (kind.equals(f.kind()) && f.tsNs() >= fromNs) {
        last = Math.max(last, f.tsNs());
      }
    }
    return last;
  }

  long firstFrame(String kind, long fromNs) {
    for (Observer.Frame f : lab.observer().frames()) {
      if (kind.equals(f.kind()) && f.tsNs() >= fromNs) {
        return f.tsNs();
      }
    }
    throw new AssertionError("no " + kind + " frame");
  }

  String agentLog() {
    try {
      return agentErr != null && Files.exists(agentErr) ? Files.readString(agentErr) : "";
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  int countLog(String needle) {
    return (int) agentLog().lines().filter(l -> l.contains(needle)).count();
  }

  void awaitLog(String needle, long timeoutMs) {
    long deadline = System.currentTimeMillis() + timeoutMs;
    while (System.currentTimeMillis() < deadline) {
      if (countLog(needle) > 0) {
        return;
      }
      if (!agent.isAlive()) {
        throw new AssertionError("agent exited " + agent.exitValue() + ":\n" + agentLog());
      }
      sleepMs(50);
    }
    throw new AssertionError("no '" + needle + "' in the agent's log within " + timeoutMs + " ms:\n" + agentLog());
  }

  void report(String fmt, Object... args) {
    System.out.println("[etcd-nwfilter] " + String.format(fmt, args));
  }

  static void sleepMs(long ms) {
    LibvirtHost.sleep(ms);
  }
}
