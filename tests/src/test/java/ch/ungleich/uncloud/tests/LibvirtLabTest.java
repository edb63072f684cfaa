package ch.ungleich.uncloud.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.tests.lab.LabGuest;
import ch.ungleich.uncloud.tests.lab.LibvirtHost;
import ch.ungleich.uncloud.tests.lab.Observer;
import ch.ungleich.uncloud.tests.lab.RecordingHook;
import ch.ungleich.uncloud.tests.lab.TwoHostLab;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * Smoke test of the lab itself, WITHOUT our hook: two private libvirt hosts, a real guest that
 * probes the observer (legit and spoofed), a live migration A->B, a hook launcher installed on both
 * hosts (a stand-in jar: proves the plumbing and what a JVM per hook call costs), a p2p migration
 * B->A with it, and a teardown that leaves nothing. Prints boot time, migration times and outages.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class LibvirtLabTest {
  private static final String PREFIX = "ucl";
  private TwoHostLab lab;
  private LabGuest guest;

  @BeforeAll
  void setUp() {
    long t0 = System.nanoTime();
    lab = TwoHostLab.create(PREFIX);
    long t1 = System.nanoTime();
    lab.start();
    long t2 = System.nanoTime();
    guest = lab.guest(20);
    lab.maxDowntimeMs(Integer.getInteger("uncloud.lab.downtime", 0));
    report("lab: guest image + netns %.2f s, two libvirtd up %.2f s (kernel %s)", (t1 - t0) / 1e9, (t2 - t1) / 1e9,
        lab.image().kernelPackage());
  }

  @AfterAll
  void tearDown() {
    if (lab != null) {
      lab.close();
    }
  }

  @Test
  @Order(1)
  void guestBootsAndObserverSeesLegitAndSpoofedProbes() {
    long since = Observer.nowNs();
    long startMs = lab.defineAndStart(lab.a(), guest, null);
    long t0 = System.nanoTime();
    String up = LabGuest.awaitUp(lab.console(guest), 90_000);
    double bootS = (System.nanoTime() - t0) / 1e9 + startMs / 1e3;
    List<String> all = new ArrayList<>(LabGuest.LEGIT);
    all.addAll(LabGuest.SPOOFED);
    lab.observer().awaitKinds(all, since, 30_000);
    double firstProbesS = (Observer.nowNs() - since) / 1e9;
    sleepMs(1000);
    long now = Observer.nowNs();
    Observer.Summary s = lab.observer().summary(now - 1_000_000_000L, now);
    report("boot: virsh start %d ms, guest UP after %.2f s, all probe kinds at observer after %.2f s [%s]", startMs,
        bootS, firstProbesS, up);
    report("steady 1 s on A, no filter:%n%s", s);
    for (String k : all) {
      // 50 nominal; a TCG guest on a loaded 2-core machine manages less, but it keeps probing
      assertTrue(s.count(k) >= 10, k + ": expected ~50 probes in 1 s (every 20 ms), got " + s.count(k) + "\n" + s);
    }
    assertTrue(s.maxLegitGapMs() < 500, "steady probing has no long gaps:\n" + s);
    for (Observer.Frame f : lab.observer().frames()) {
      if (f.kind().equals("spoofmac")) {
        assertEquals(guest.spoofMac(), f.srcMac(), "spoofmac probe carries the foreign MAC");
      } else if (f.probe()) {
        assertEquals(guest.mac(), f.srcMac(), f.kind() + " probe comes from the guest's MAC");
      }
    }
    String tap = tap(lab.a());
    assertTrue(lab.a().ip("-o", "link", "show", tap).out().contains("master " + TwoHostLab.BRIDGE), tap + " on A's br0");
  }

  @Test
  @Order(2)
  void liveMigrationAtoBManaged() {
    TwoHostLab.Migration m = lab.migrate(guest.name(), lab.a(), lab.b(), false);
    assertTrue(m.result().ok(), "virsh migrate A->B: " + m.result().err() + m.result().out());
    sleepMs(1000);
    Observer.Summary s = lab.observer().summary(m.startNs() - 1_000_000_000L, m.endNs() + 1_000_000_000L);
    Observer.Summary after = lab.observer().summary(m.endNs(), Observer.nowNs());
    report("migration A->B managed, no hook: %.2f s, largest legit gap %.1f ms%n%s", m.seconds(), s.maxLegitGapMs(), s);
    report("  %s", domjob(lab.b()));
    assertEquals(List.of(guest.name()), lab.b().runningDomains(), () -> "guest runs on B" + diagnose(lab.b()));
    assertEquals(List.of(), lab.a().allDomains(), "--undefinesource: nothing left on A");
    assertTrue(lab.b().virsh("dominfo", guest.name()).out().matches("(?s).*Persistent:\\s+yes.*"), "persistent on B");
    for (String k : LabGuest.LEGIT) {
      assertTrue(after.count(k) > 10, () -> k + " probes arrive after the migration\n" + after + diagnose(lab.b()));
    }
    assertTrue(after.count("spoof4") > 10, "no filter: spoofed probes arrive from B too");
    assertTrue(s.maxLegitGapMs() < m.seconds() * 1000, "legit probes only paused, never stopped:\n" + s);
    String tap = tap(lab.b());
    assertTrue(lab.b().ip("-o", "link", "show", tap).out().contains("master " + TwoHostLab.BRIDGE), tap + " on B's br0");
  }

  @Test
  @Order(3)
  void hookLauncherOnBothHostsSeesMigrationP2pBtoA() throws IOException {
    // the installed launcher (UNCLOUD_HOOK_CONFIG=per-host config) with a stand-in jar; libvirtd only
    // looks for hooks when it starts, so restart both
    Path jar = RecordingHook.jar(lab.dir());
    for (LibvirtHost h : List.of(lab.a(), lab.b())) {
      Path hook = h.installUncloudHook(jar, Map.of("backend", "nft"));
      assertTrue(Files.readString(hook).contains(" -jar '" + jar + "' \"$@\""), Files.readString(hook));
    }
    long t0 = System.nanoTime();
    lab.a().restart();
    lab.b().restart();
    report("restart of both libvirtd with hook: %.2f s", (System.nanoTime() - t0) / 1e9);
    assertEquals(List.of(guest.name()), lab.b().runningDomains(), "guest survives the libvirtd restart");
    assertTrue(log(lab.b()).stream().anyMatch(l -> l.contains(" reconnect begin dom=" + guest.name())),
        "B's hook saw reconnect: " + log(lab.b()));

    TwoHostLab.Migration m = lab.migrate(guest.name(), lab.b(), lab.a(), true);
    assertTrue(m.result().ok(), "virsh migrate --p2p B->A: " + m.result().err() + m.result().out());
    sleepMs(1000);
    Observer.Summary s = lab.observer().summary(m.startNs() - 1_000_000_000L, m.endNs() + 1_000_000_000L);
    report("migration B->A p2p, stand-in JVM hook: %.2f s, largest legit gap %.1f ms%n%s", m.seconds(),
        s.maxLegitGapMs(), s);
    report("  %s", domjob(lab.a()));
    List<String> la = log(lab.a());
    List<String> lb = log(lab.b());
    report("hook calls on A (destination):%n  %s", String.join("\n  ", la));
    report("hook calls on B (source):%n  %s", String.join("\n  ", lb));
    assertEquals(List.of(guest.name()), lab.a().runningDomains(), () -> "guest runs on A" + diagnose(lab.a()));
    assertEquals(List.of("migrate begin", "prepare begin", "start begin", "started begin"), ops(la),
        "destination's hook calls, in order");
    assertEquals(List.of("reconnect begin", "stopped end", "release end"), ops(lb), "source's hook calls, in order");
    for (LibvirtHost h : List.of(lab.a(), lab.b())) {
      for (String l : log(h)) {
        String first = l.contains(" reconnect begin ") ? "hook-batch" : "hook";
        assertTrue(l.contains(" first=" + first + " config=" + h.hookConfigPath() + " "),
            "launcher passes `" + first + "` and its own config: " + l);
      }
    }
    String tap = tap(lab.a());
    assertTrue(la.stream().anyMatch(l -> l.contains(" start begin ") && l.endsWith(" tap=" + tap)),
        "start begin carries the new tap " + tap + ": " + la);
    Observer.Summary after = lab.observer().summary(m.endNs(), Observer.nowNs());
    for (String k : LabGuest.LEGIT) {
      assertTrue(after.count(k) > 10, () -> k + " probes after B->A\n" + after + diagnose(lab.a()));
    }
  }

  @Test
  @Order(4)
  void teardownLeavesNothing() {
    List<Long> pids = lab.pids();
    assertFalse(pids.isEmpty());
    long t0 = System.nanoTime();
    lab.close();
    report("teardown %.2f s (pids watched: %s)", (System.nanoTime() - t0) / 1e9, pids);
    assertEquals(List.of(), lab.leftovers(pids), "nothing of the lab is left");
  }

  // ------------------------------------------------------------------ helpers

  private String tap(LibvirtHost h) {
    String out = h.virsh("domiflist", guest.name()).check().out();
    return out.lines().map(String::strip).filter(l -> l.contains(TwoHostLab.BRIDGE)).map(l -> l.split("\\s+")[0])
        .findFirst().orElseThrow(() -> new AssertionError("no tap on br0: " + out));
  }

  /** What a failure message needs: domain state, tap counters, console tail, last frames. */
  private String diagnose(LibvirtHost h) {
    StringBuilder sb = new StringBuilder("\n--- diagnosis on " + h.name() + "\n");
    sb.append("domstate: ").append(h.virsh("domstate", guest.name()).out().strip()).append('\n');
    try {
      sb.append(h.exec("ip", "-s", "link", "show", tap(h)).out());
    } catch (AssertionError | RuntimeException e) {
      sb.append("no tap: ").append(e.getMessage()).append('\n');
    }
    sb.append("console tail:\n").append(LibvirtHost.tail(lab.console(guest))).append('\n');
    sb.append("qemu log tail:\n").append(LibvirtHost.tail(h.qemuLog(guest.name()))).append('\n');
    List<Observer.Frame> f = lab.observer().frames();
    sb.append("last frames at observer (now ").append(Observer.nowNs()).append("):\n");
    f.subList(Math.max(0, f.size() - 8), f.size()).forEach(x -> sb.append("  ").append(x).append('\n'));
    return sb.toString();
  }

  private static String domjob(LibvirtHost dst) {
    return dst.virsh("domjobinfo", "--completed", "ucm-vm1").out().lines()
        .filter(l -> l.matches("(Time elapsed|Total downtime|Data processed).*")).map(String::strip)
        .reduce((x, y) -> x + "; " + y).orElse("(no job info)");
  }

  private static List<String> log(LibvirtHost h) {
    try (Stream<String> s = Files.exists(h.hookLog()) ? Files.lines(h.hookLog()) : Stream.empty()) {
      return s.toList();
    } catch (IOException e) {
      throw new AssertionError(e);
    }
  }

  /** "op subop" of each hook log line, in order. */
  private static List<String> ops(List<String> log) {
    return log.stream().map(l -> l.split(" ")).map(f -> f[1] + " " + f[2]).toList();
  }

  private static void report(String fmt, Object... args) {
    System.out.println("[lab] " + String.format(fmt, args));
  }

  private static void sleepMs(long ms) {
    LibvirtHost.sleep(ms);
  }
}
