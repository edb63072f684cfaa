package ch.ungleich.uncloud.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.tests.lab.Cmd;
import ch.ungleich.uncloud.tests.lab.LibvirtHost;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

/**
 * {@link MigrationSuite} with {@code backend = nft}: the hook's nft rules exist on the destination when
 * its {@code started begin} runs (before the guest's first packet there), and nothing of the domain is
 * left in the source's table or ownership records.
 */
class MigrationNftTest extends MigrationSuite {
  @Override
  String backend() {
    return "nft";
  }

  @Override
  String prefix() {
    return "ucm";
  }

  @Override
  String ingress() {
    return INGRESS;
  }

  @Override
  void boot() {
    lab.defineAndStart(lab.a(), guest, fullMetadata());
  }

  /** The tap's element in the map and its chain exist (nft -j in the host's netns). */
  @Override
  void assertProtected(LibvirtHost h) {
    String tap = tap(h);
    String j = h.exec("nft", "-j", "list", "table", "bridge", "uncloud").check().out();
    assertTrue(j.contains("\"port-" + tap + "\""), h.name() + " has chain port-" + tap + ": " + j);
    assertTrue(j.contains("\"" + tap + "\""), h.name() + " has the map element for " + tap);
    assertTrue(j.contains(guest.uuid()), h.name() + " element comment names the domain");
    String in4 = h.exec("nft", "list", "set", "inet", "uncloud-inbound", "in4").check().out();
    assertTrue(in4.contains(guest.ip4Address()), h.name() + ": the guest's IPv4 is ingress-filtered: " + in4);
  }

  /** At the last started begin, nft already had the element for the tap (hook's start begin done). */
  @Override
  void assertReadyBeforeGuestRuns(LibvirtHost h, String tap) {
    List<String> c = callLines(h);
    int started = -1;
    for (int i = 0; i < c.size(); i++) {
      if (c.get(i).endsWith(" started begin")) {
        started = i;
      }
    }
    assertTrue(started >= 0, "started begin seen: " + c);
    boolean seen = false;
    for (int i = started + 1; i < c.size() && c.get(i).startsWith("  nft: "); i++) {
      seen |= c.get(i).contains("\"" + tap + "\"");
    }
    assertTrue(seen, h.name() + ": at started begin (before the guest runs) the map already has " + tap + ": " + c);
    String log = hookLog(h);
    assertTrue(log.contains(guest.name() + " start begin: filtering"), "hook log has start begin applied: " + log);
  }

  /** No element/chain of the domain in nft, no ownership record under state_dir. */
  @Override
  void assertNothingLeft(LibvirtHost h, String what) {
    Cmd.Result r = h.exec("nft", "-j", "list", "table", "bridge", "uncloud");
    if (r.ok()) {
      assertFalse(r.out().contains(guest.uuid()), what + ": no element of the domain: " + r.out());
      assertFalse(r.out().contains("\"port-vnet"), what + ": no port chain: " + r.out());
    }
    Cmd.Result in = h.exec("nft", "list", "table", "inet", "uncloud-inbound");
    if (in.ok()) {
      assertFalse(in.out().contains(guest.ip4Address()), what + ": no inbound element of the guest: " + in.out());
    }
    Path st = h.hookStateDir();
    if (Files.isDirectory(st)) {
      try (Stream<Path> s = Files.walk(st)) {
        List<Path> records = s.filter(Files::isRegularFile).filter(p -> !p.getFileName().toString().equals("lock")).toList();
        assertEquals(List.of(), records, what + ": no ownership record under " + st);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
  }

  /**
   * The guest's IPv6 dropped from its metadata on A (live + config), an IPv4 added (the inbound rules
   * kept), then A->B: B enforces it.
   */
  @Override
  void changeMetadataAndMigrate() {
    migrateWithMetadataWithoutIpv6("<firewall><interface mac=\"" + guest.mac() + "\"><ip address=\"" + guest.ip4Address()
        + "\"/><ip address=\"2001:db8:1234::/64\"/><ip address=\"192.0.2.77\"/>" + ingress().replace("uc:", "")
        + "</interface></firewall>",
        "after removing the guest's IPv6 from its metadata");
    assertTrue(lab.b().virsh("metadata", guest.name(), NS_URI).check().out().contains("192.0.2.77"),
        "changed metadata on B");
    String chain = lab.b().exec("nft", "list", "chain", "bridge", "uncloud", "port-" + tap(lab.b())).check().out();
    assertTrue(chain.contains("192.0.2.77"), "B's chain has the added IPv4:\n" + chain);
    restoreFullMetadata(lab.b());
  }
}
