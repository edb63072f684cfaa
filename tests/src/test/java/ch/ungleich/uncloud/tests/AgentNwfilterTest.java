package ch.ungleich.uncloud.tests;

import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.tests.lab.Cmd;
import ch.ungleich.uncloud.tests.lab.LibvirtHost;
import ch.ungleich.uncloud.tests.lab.Observer;
import java.util.ArrayList;
import java.util.List;

/**
 * {@link AgentSuite} with {@code backend = nwfilter}: the agent writes the live filterrefs (a
 * hot-plugged NIC gets ours, a live metadata change new parameters) with virDomainUpdateDeviceFlags;
 * libvirt's binding on the tap is the protection. libvirt binds nothing to a NIC attached without a
 * filterref, so until the agent acted the hot-plugged NIC is unfiltered (printed, not asserted).
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

  /**
   * libvirt re-instantiates the whole filter (ebtables/iptables) on each filterref update: 1.2-4.7 s
   * measured on the loaded 2-core machine (see AgentSuite); the figures are printed.
   */
  @Override
  long withinMs() {
    return 10_000;
  }

  @Override
  boolean dropsFromAttach() {
    return false;
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

  /** libvirt's binding of one of our filters on the tap. */
  @Override
  long awaitProtected(String tap, long sinceNs, long timeoutMs) {
    long deadline = System.currentTimeMillis() + timeoutMs;
    while (System.currentTimeMillis() < deadline) {
      if (bound(tap)) {
        return Observer.nowNs();
      }
      sleepMs(5);
    }
    throw new AssertionError("no binding on " + tap + " within " + timeoutMs + " ms; agent log:\n" + agentLog());
  }

  boolean bound(String tap) {
    return a.virsh("nwfilter-binding-list").out().lines().anyMatch(l -> l.contains(tap) && l.contains("uncloud-"));
  }

  @Override
  boolean leftovers(String tap) {
    return a.virsh("nwfilter-binding-list").out().lines().anyMatch(l -> l.strip().startsWith(tap + " "));
  }

  @Override
  void assertBootProtected() {
    assertTrue(bound(tap()), "binding of our filter on the guest's tap: " + a.virsh("nwfilter-binding-list").out());
  }
}
