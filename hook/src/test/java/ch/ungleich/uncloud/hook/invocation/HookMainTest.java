package ch.ungleich.uncloud.hook.invocation;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.nft.FakeNftRunner;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class HookMainTest {
  static final String UUID = "6d696776-6d31-4000-8000-000000000001";
  @TempDir Path tmp;
  FakeNftRunner nft;
  ByteArrayOutputStream err;
  Path conf;

  @BeforeEach
  void setUp() throws IOException {
    nft = new FakeNftRunner();
    conf = tmp.resolve("hook.conf");
    Files.writeString(conf, "state_dir = " + tmp.resolve("state") + "\nlog_file = " + tmp.resolve("log") + "\n");
  }

  static String xml(String metadata, boolean withTap) {
    return "<domain type='qemu'><name>web01</name><uuid>" + UUID + "</uuid>"
        + (metadata == null ? "" : "<metadata><uc:firewall xmlns:uc='https://ungleich.ch/uncloud/hook/1'>"
            + metadata + "</uc:firewall></metadata>")
        + "<devices><interface type='bridge'><mac address='52:54:00:aa:bb:01'/><source bridge='br0'/>"
        + (withTap ? "<target dev='vnet0'/>" : "") + "<alias name='net0'/></interface></devices></domain>";
  }

  static final String GOOD = "<uc:interface mac='52:54:00:aa:bb:01'><uc:ip address='192.0.2.10'/></uc:interface>";
  static final String BAD = "<uc:interface mac='52:54:00:aa:bb:01'><uc:ip address='192.0.2.1/24'/></uc:interface>";

  int hook(String xml, String... args) {
    err = new ByteArrayOutputStream();
    HookMain h = new HookMain(Map.of("UNCLOUD_HOOK_CONFIG", conf.toString()),
        new PrintStream(err, true, StandardCharsets.UTF_8), c -> nft);
    return h.run(args, new ByteArrayInputStream(xml.getBytes(StandardCharsets.UTF_8)));
  }

  String stderr() {
    return err.toString(StandardCharsets.UTF_8);
  }

  @Test
  void prepareValidatesAndChangesNothing() {
    assertEquals(ExitCodes.OK, hook(xml(GOOD, false), "web01", "prepare", "begin", "-"));
    assertTrue(nft.scripts.isEmpty());
    assertEquals("", stderr());
  }

  @Test
  void logLinesNameNicMacTapAndTime() throws IOException {
    assertEquals(ExitCodes.OK, hook(xml(GOOD, true), "web01", "start", "begin", "-"));
    assertEquals(ExitCodes.OK, hook(xml(GOOD, false), "web01", "stopped", "end", "-"));
    List<String> lines = Files.readAllLines(tmp.resolve("log"));
    assertEquals(2, lines.size(), String.join("\n", lines));
    assertTrue(lines.get(0).matches(".* info web01 start begin: filtering net0 52:54:00:aa:bb:01 vnet0 filter \\(\\d+ ms\\)"),
        lines.get(0));
    assertTrue(lines.get(1).matches(".* info web01 stopped end -: removed vnet0 52:54:00:aa:bb:01 \\(\\d+ ms\\)"),
        lines.get(1));
  }

  @Test
  void invalidMetadataAbortsWithOneLine() {
    for (String op : List.of("prepare", "start", "migrate", "restore")) {
      assertEquals(ExitCodes.INVALID, hook(xml(BAD, true), "web01", op, "begin", "-"), op);
      String line = stderr();
      assertEquals(1, line.lines().count(), line);
      assertEquals("uncloud-hook: web01 net0 52:54:00:aa:bb:01: '192.0.2.1/24' has host bits set; the network is"
          + " 192.0.2.0/24\n", line);
    }
    assertTrue(nft.scripts.isEmpty());
  }

  @Test
  void malformedXmlAbortsWithOneLine() {
    assertEquals(ExitCodes.INVALID, hook("<domain><name>x", "x", "prepare", "begin", "-"));
    assertTrue(stderr().startsWith("uncloud-hook: x: domain XML is not well-formed"), stderr());
    assertEquals(1, stderr().lines().count());
  }

  @Test
  void startAppliesOneTransactionAndStopRemovesIt() throws IOException {
    assertEquals(ExitCodes.OK, hook(xml(GOOD, true), "web01", "start", "begin", "-"));
    assertEquals(1, nft.scripts.size());
    assertTrue(nft.last().contains("jump port-vnet0"));
    assertTrue(Files.readString(tmp.resolve("state/taps/vnet0")).startsWith(UUID + " 52:54:00:aa:bb:01"));
    // at stopped end the XML has no <target dev>: found by UUID
    assertEquals(ExitCodes.OK, hook(xml(GOOD, false), "web01", "stopped", "end", "-"));
    assertTrue(nft.last().contains("delete element bridge uncloud ports { \"vnet0\" }"));
    assertFalse(Files.exists(tmp.resolve("state/taps/vnet0")));
    // release end after that: nothing left, no nft call, still success
    int calls = nft.scripts.size();
    assertEquals(ExitCodes.OK, hook(xml(GOOD, false), "web01", "release", "end", "migrated"));
    assertEquals(calls, nft.scripts.size());
  }

  @Test
  void stopWorksEvenIfTheMetadataBecameInvalid() {
    assertEquals(ExitCodes.OK, hook(xml(GOOD, true), "web01", "start", "begin", "-"));
    assertEquals(ExitCodes.OK, hook(xml("<uc:junk/>", false), "web01", "stopped", "end", "-"));
    assertTrue(nft.last().contains("delete chain bridge uncloud port-vnet0"));
  }

  @Test
  void nftFailureAtStartFailsClosedAndRecordsNothing() {
    nft.failWith = "Error: Could not process rule: No such file or directory";
    assertEquals(ExitCodes.APPLY_FAILED, hook(xml(GOOD, true), "web01", "start", "begin", "-"));
    assertEquals("uncloud-hook: web01: nft failed: Error: Could not process rule: No such file or directory\n",
        stderr());
    assertFalse(Files.exists(tmp.resolve("state/taps/vnet0")));
  }

  @Test
  void reconnectFailureIsLoggedButNeverKillsTheVm() throws IOException {
    nft.failWith = "boom";
    assertEquals(ExitCodes.OK, hook(xml(GOOD, true), "web01", "reconnect", "begin", "-"));
    assertTrue(stderr().contains("nft failed: boom"), stderr());
    assertTrue(Files.readString(tmp.resolve("log")).contains("reconnect begin: nft failed: boom"));
    assertEquals(ExitCodes.OK, hook(xml(BAD, true), "web01", "reconnect", "begin", "-"));
  }

  @Test
  void otherOperationsDoNothing() {
    for (String[] a : List.of(new String[] {"started", "begin"}, new String[] {"migrate", "end"},
        new String[] {"restore", "end"}, new String[] {"attach", "begin"}, new String[] {"", ""})) {
      assertEquals(ExitCodes.OK, hook("garbage that is not xml", "web01", a[0], a[1], "-"));
    }
    assertTrue(nft.scripts.isEmpty());
    assertEquals("", stderr());
  }

  @Test
  void brokenConfigFailsClosedOnStartButNotOnReconnect() throws IOException {
    Files.writeString(conf, "unlisted = maybe\n");
    assertEquals(ExitCodes.INVALID, hook(xml(GOOD, true), "web01", "start", "begin", "-"));
    assertTrue(stderr().contains("unlisted = 'maybe' is not one of deny, mac-only, allow"), stderr());
    assertEquals(ExitCodes.OK, hook(xml(GOOD, true), "web01", "reconnect", "begin", "-"));
  }

  /** backend = nwfilter: no nft ever; prepare refuses stale filterrefs; migrate/restore print the fix. */
  @Test
  void nwfilterBackendChecksAndRewritesFilterrefsAndNeverRunsNft() throws IOException {
    Files.writeString(conf, "backend = nwfilter\nstate_dir = " + tmp.resolve("state") + "\nlog_file =\n");
    for (String[] op : List.of(new String[] {"start", "begin"}, new String[] {"started", "begin"},
        new String[] {"reconnect", "begin"}, new String[] {"stopped", "end"}, new String[] {"release", "end"})) {
      assertEquals(ExitCodes.OK, hook(xml(GOOD, true), "web01", op[0], op[1], "-"), op[0]);
    }
    assertTrue(nft.scripts.isEmpty());
    assertEquals(ExitCodes.INVALID, hook(xml(GOOD, false), "web01", "prepare", "begin", "-"));
    assertEquals("uncloud-hook: web01: filterrefs disagree with the metadata: net0 52:54:00:aa:bb:01: has no"
        + " filterref, needs uncloud-clean-traffic; run 'uncloud-hook sync web01'\n", stderr());
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    err = new ByteArrayOutputStream();
    HookMain h = new HookMain(Map.of("UNCLOUD_HOOK_CONFIG", conf.toString()),
        new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8),
        c -> nft);
    assertEquals(ExitCodes.OK, h.run(new String[] {"web01", "restore", "begin", "-"},
        new ByteArrayInputStream(xml(GOOD, false).getBytes(StandardCharsets.UTF_8))));
    String rewritten = out.toString(StandardCharsets.UTF_8);
    assertTrue(rewritten.contains("<filterref filter='uncloud-clean-traffic'>"), rewritten);
    assertEquals(ExitCodes.OK, hook(rewritten, "web01", "prepare", "begin", "-"), stderr());
    // someone else's filterref on a NIC we must filter: refused, at prepare and at migrate
    String foreign = xml(GOOD, false).replace("<alias", "<filterref filter='clean-traffic'/><alias");
    assertEquals(ExitCodes.INVALID, hook(foreign, "web01", "prepare", "begin", "-"));
    assertEquals(ExitCodes.INVALID, hook(foreign, "web01", "migrate", "begin", "-"));
    assertTrue(stderr().contains("which uncloud-hook does not manage"), stderr());
    assertTrue(nft.scripts.isEmpty());
  }

  /** backend = nft: migrate/restore print nothing for XML without filterrefs of ours, foreign ones included. */
  @Test
  void nftBackendLeavesXmlWithoutOurFilterrefsAlone() {
    for (String extra : List.of("", "<filterref filter='clean-traffic'><parameter name='IP' value='192.0.2.10'/>"
        + "</filterref>")) {
      String x = xml(GOOD, false).replace("<alias", extra + "<alias");
      for (String op : List.of("migrate", "restore")) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        err = new ByteArrayOutputStream();
        HookMain h = new HookMain(Map.of("UNCLOUD_HOOK_CONFIG", conf.toString()),
            new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8),
            c -> nft);
        assertEquals(ExitCodes.OK, h.run(new String[] {"web01", op, "begin", "-"},
            new ByteArrayInputStream(x.getBytes(StandardCharsets.UTF_8))));
        assertEquals("", out.toString(StandardCharsets.UTF_8), op + " " + extra);
      }
    }
  }

  /** Concurrent calls for different domains serialise on the host lock and lose nothing. */
  @Test
  void concurrentStartsLoseNothing() throws Exception {
    ExecutorService pool = Executors.newFixedThreadPool(8);
    try {
      List<Future<Integer>> results = new ArrayList<>();
      for (int i = 0; i < 20; i++) {
        int n = i;
        results.add(pool.submit(() -> {
          String uuid = String.format("6d696776-6d31-4000-8000-%012d", n);
          String x = "<domain><name>vm" + n + "</name><uuid>" + uuid + "</uuid><devices><interface type='bridge'>"
              + String.format("<mac address='52:54:00:00:00:%02x'/>", n) + "<target dev='vnet" + n + "'/>"
              + "</interface></devices></domain>";
          HookMain h = new HookMain(Map.of("UNCLOUD_HOOK_CONFIG", conf.toString()),
              new PrintStream(new ByteArrayOutputStream()), c -> nft);
          return h.run(new String[] {"vm" + n, "start", "begin", "-"},
              new ByteArrayInputStream(x.getBytes(StandardCharsets.UTF_8)));
        }));
      }
      for (Future<Integer> f : results) {
        assertEquals(ExitCodes.OK, f.get());
      }
    } finally {
      pool.shutdown();
    }
    try (var s = Files.list(tmp.resolve("state/taps"))) {
      assertEquals(20, s.filter(p -> !p.getFileName().toString().startsWith(".")).count());
    }
  }
}
