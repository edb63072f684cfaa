package ch.ungleich.uncloud.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.tests.lab.Cmd;
import ch.ungleich.uncloud.tests.lab.LibvirtHost;
import ch.ungleich.uncloud.tests.lab.Observer;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;

/**
 * {@link AgentSuite} with {@code backend = nwfilter}: libvirt's nwfilter filters; the agent writes the
 * live filterrefs (a hot-plugged NIC gets ours, a live metadata change new parameters) and keeps its
 * guard, {@code table bridge uncloud_nwfilter}: a VM tap passes on to libvirt's chains only once
 * libvirt has linked its rules; a hot-plugged one is dropped until then, and a NIC whose filterref
 * changes is held (dropped) until libvirt has rebuilt its rules. The same zero-spoofed assertions as
 * nft, from the attach on; what differs is how long a change takes (libvirt rebuilds the whole filter).
 */
class AgentNwfilterTest extends AgentSuite {
  @Override
  String backend() {
    return "nwfilter";
  }

  @Override
  String prefix() {
    return "uaw";
  }

  /** libvirt rebuilds a NIC's filter with one ebtables process per rule: seconds on the loaded 2-core machine. */
  @Override
  long withinMs() {
    return 30_000;
  }

  /** Our filters defined, the filterrefs written into the persistent definition (what sync is for). */
  @Override
  void beforeStart() {
    report("nwfilter install: %s", nwCli("nwfilter", "install").out().strip().replace('\n', ' '));
    report("sync: %s", nwCli("sync", guest.name()).out().strip());
  }

  Cmd.Result nwCli(String... args) {
    List<String> argv = new ArrayList<>(List.of("ip", "netns", "exec", a.netns(), "env", "UNCLOUD_HOOK_CONFIG=" + a.hookConfigPath(),
        LibvirtHost.currentJava().toString(), "-jar", jar.toString()));
    argv.addAll(List.of(args));
    argv.addAll(List.of("--connect", a.uri()));
    return Cmd.run(argv, null, null, 120).check();
  }

  /**
   * The tap passes our guard (in its bound set) and libvirt's root chain for it is linked. For a tap
   * that is not the guest's first (the hot-plugged one) it also prints when libvirt listed its binding,
   * when libvirt's temporary root chain ({@code libvirt-J-TAP}) and its final one ({@code libvirt-I-TAP})
   * were jumped to, and when the agent let it through: a binding is listed before its rules are linked.
   */
  @Override
  long awaitProtected(String tap, long sinceNs, long timeoutMs) {
    boolean timeline = !tap.equals(tap());
    long listed = 0;
    long tmp = 0;
    long linkedNs = 0;
    long deadline = System.currentTimeMillis() + timeoutMs;
    while (System.currentTimeMillis() < deadline) {
      if (timeline) {
        String pre = a.exec("nft", "list", "chain", "bridge", "nat", "PREROUTING").out();
        long now = Observer.nowNs();
        if (listed == 0 && a.virsh("nwfilter-binding-list").out().lines().anyMatch(l -> l.strip().startsWith(tap + " "))) {
          listed = now;
        }
        if (tmp == 0 && pre.contains("jump libvirt-J-" + tap)) {
          tmp = now;
        }
        if (linkedNs == 0 && pre.contains("jump libvirt-I-" + tap)) {
          linkedNs = now;
        }
      }
      if (bound(tap) && linked(tap)) {
        long at = Observer.nowNs();
        if (timeline) {
          report("%s after virsh returned: binding listed %s, libvirt-J-%s jumped to %s, libvirt-I-%s jumped to %s,"
              + " let through by the agent %.0f ms (each poll: nft, then virsh)", tap, ms(listed, sinceNs), tap,
              ms(tmp, sinceNs), tap, ms(linkedNs, sinceNs), (at - sinceNs) / 1e6);
        }
        return at;
      }
      sleepMs(5);
    }
    throw new AssertionError("not bound and linked within " + timeoutMs + " ms; agent log:\n" + agentLog()
        + "\n" + a.exec("nft", "list", "table", "bridge", "uncloud_nwfilter").out());
  }

  private static String ms(long ns, long sinceNs) {
    return ns == 0 ? "(not seen)" : String.format("%.0f ms", (ns - sinceNs) / 1e6);
  }

  boolean bound(String tap) {
    Cmd.Result r = a.exec("nft", "list", "set", "bridge", "uncloud_nwfilter", "bound");
    return r.ok() && r.out().contains("\"" + tap + "\"");
  }

  boolean linked(String tap) {
    Cmd.Result r = a.exec("nft", "list", "chain", "bridge", "nat", "PREROUTING");
    return r.ok() && r.out().contains("jump libvirt-I-" + tap);
  }

  @Override
  boolean leftovers(String tap) {
    return a.virsh("nwfilter-binding-list").out().lines().anyMatch(l -> l.strip().startsWith(tap + " "))
        || a.exec("nft", "list", "table", "bridge", "uncloud_nwfilter").out().contains("\"" + tap + "\"");
  }

  /** Our guard table deleted: back within a second, the tap let through (libvirt's rules are untouched). */
  @Test
  @Order(2)
  void lostGuardComesBack() {
    String tap = tap();
    long t0 = Observer.nowNs();
    a.exec("nft", "delete", "table", "bridge", "uncloud_nwfilter").check();
    long back = awaitProtected(tap, t0, 5_000);
    sleepMs(500);
    Observer.Summary after = lab.observer().summary(back, Observer.nowNs());
    report("nft delete table bridge uncloud_nwfilter: back %.0f ms later; spoofed through meanwhile: %d", (back - t0) / 1e6,
        lab.observer().summary(t0, back).spoofed());
    assertTrue(back - t0 <= WITHIN_MS * 1_000_000L, "guard back within 1 s");
    assertEquals(0, after.spoofed(), "zero spoofed after:\n" + after);
    assertTrue(after.count("legit4") > 5, "legit passes (libvirt's rules were not touched):\n" + after);
  }

  /**
   * {@code nft flush ruleset} also removes libvirt's ebtables chains, which libvirt never restores: the
   * agent puts its guard back with the tap held, so the NIC is dropped (fail closed) instead of
   * forwarding unfiltered. Last: libvirt does not restore its rules after a flush (only a libvirtd restart would). */
  @Test
  @Order(6)
  void flushedLibvirtRulesFailClosed() {
    String tap = tap();
    long f0 = Observer.nowNs();
    a.exec("nft", "flush", "ruleset").check();
    long deadline = System.currentTimeMillis() + 5_000;
    while (System.currentTimeMillis() < deadline && !held(tap)) {
      sleepMs(5);
    }
    long guarded = Observer.nowNs();
    assertTrue(held(tap), "the tap is held after the flush:\n" + a.exec("nft", "list", "ruleset").out() + agentLog());
    sleepMs(1000);
    Observer.Summary later = lab.observer().summary(guarded, Observer.nowNs());
    report("nft flush ruleset: guard back with %s held %.0f ms later; spoofed through meanwhile: %d; after: %s", tap,
        (guarded - f0) / 1e6, lab.observer().summary(f0, guarded).spoofed(), later);
    assertTrue(guarded - f0 <= WITHIN_MS * 1_000_000L, "guard back within 1 s");
    assertEquals(0, later.spoofed(), "fail closed: zero spoofed once the guard is back:\n" + later);
    assertEquals(0, later.count("legit4"), "libvirt's rules are gone: the NIC is dropped, not forwarded:\n" + later);
  }

  boolean held(String tap) {
    Cmd.Result r = a.exec("nft", "list", "set", "bridge", "uncloud_nwfilter", "hold");
    return r.ok() && r.out().contains("\"" + tap + "\"");
  }
}
