package ch.ungleich.uncloud.hook.invocation;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.nft.FakeNftRunner;
import ch.ungleich.uncloud.hook.nft.NftRunner;
import ch.ungleich.uncloud.hook.state.StateStore;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class HookBatchTest {
  @TempDir Path tmp;
  Path conf;
  Path spool;
  FakeNftRunner nft;
  ByteArrayOutputStream err;

  @BeforeEach
  void setUp() throws IOException {
    nft = new FakeNftRunner();
    conf = tmp.resolve("hook.conf");
    spool = tmp.resolve("spool");
    Files.createDirectories(spool);
    Files.writeString(conf, "state_dir = " + tmp.resolve("state") + "\nlog_file = " + tmp.resolve("log")
        + "\nlock_timeout = 1\n");
  }

  /** Domain n: uuid ...00n, MAC 52:54:00:aa:bb:0n, IPv4 192.0.2.n. */
  static String xml(int n, String tap) {
    String mac = String.format("52:54:00:aa:bb:%02x", n);
    return "<domain type='kvm'><name>vm" + n + "</name><uuid>6d696776-6d31-4000-8000-00000000000" + n + "</uuid>"
        + "<metadata><uc:firewall xmlns:uc='https://ungleich.ch/uncloud/hook/1'><uc:interface mac='" + mac
        + "'><uc:ip address='192.0.2." + n + "'/></uc:interface></uc:firewall></metadata>"
        + "<devices><interface type='bridge'><mac address='" + mac + "'/><source bridge='br0'/><target dev='" + tap
        + "'/></interface></devices></domain>";
  }

  static String uuid(int n) {
    return "6d696776-6d31-4000-8000-00000000000" + n;
  }

  void spool(String file, String content) throws IOException {
    Files.writeString(spool.resolve(file), content);
  }

  int batch(NftRunner runner, String... args) {
    err = new ByteArrayOutputStream();
    return new HookBatch(Map.of("UNCLOUD_HOOK_CONFIG", conf.toString()),
        new PrintStream(err, true, StandardCharsets.UTF_8), c -> runner).run(args);
  }

  int batch() {
    return batch(nft, "reconnect", spool.toString());
  }

  String stderr() {
    return err.toString(StandardCharsets.UTF_8);
  }

  List<String> spooled() throws IOException {
    try (var s = Files.list(spool)) {
      return s.map(p -> p.getFileName().toString()).sorted().toList();
    }
  }

  String owner(String tap) {
    var o = new StateStore(tmp.resolve("state").toString(), 1).owner(tap);
    return o == null ? null : o.uuid();
  }

  static int count(String text, String what) {
    return text.split(Pattern.quote(what), -1).length - 1;
  }

  @Test
  void everySpooledDomainInOneTransaction() throws IOException {
    spool("101.xml", xml(1, "vnet1"));
    spool("102.xml", xml(2, "vnet2"));
    spool("103.xml", xml(3, "vnet3"));
    assertEquals(ExitCodes.OK, batch());
    assertEquals(1, nft.scripts.size());
    String s = nft.last();
    for (int n = 1; n <= 3; n++) {
      assertTrue(s.contains("add chain bridge uncloud port-vnet" + n + "\n"), s);
      assertEquals(uuid(n), owner("vnet" + n));
    }
    assertEquals(1, count(s, "add table bridge uncloud {"), "the prelude once, not once per domain");
    assertEquals(1, count(s, "add table bridge uncloud-inbound {"), "the inbound prelude once, not once per domain");
    assertEquals(List.of(), spooled(), "handled files are removed: their launchers need not run a JVM");
    assertEquals("", stderr());
    assertTrue(Files.readString(tmp.resolve("log")).contains("hook-batch reconnect: 3 domains from " + spool
        + ", one transaction"));
  }

  /** backend = nwfilter: no nft; each domain's filterrefs checked, as one reconnect call would. */
  @Test
  void nwfilterBackendChecksEachDomainAndNeverRunsNft() throws IOException {
    Files.writeString(conf, "backend = nwfilter\nstate_dir = " + tmp.resolve("state") + "\nlog_file = "
        + tmp.resolve("log") + "\n");
    // the filterrefs the metadata asks for: what restore begin prints
    ByteArrayOutputStream synced = new ByteArrayOutputStream();
    new HookMain(Map.of("UNCLOUD_HOOK_CONFIG", conf.toString()), new PrintStream(synced, true, StandardCharsets.UTF_8),
        new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8), c -> nft)
        .run(new String[] {"vm1", "restore", "begin", "-"},
            new java.io.ByteArrayInputStream(xml(1, "vnet1").getBytes(StandardCharsets.UTF_8)));
    assertTrue(synced.toString(StandardCharsets.UTF_8).contains("uncloud-clean-traffic"), synced.toString());
    spool("101.xml", synced.toString(StandardCharsets.UTF_8));
    spool("102.xml", xml(2, "vnet2"));
    assertEquals(ExitCodes.OK, batch());
    assertTrue(nft.scripts.isEmpty(), nft.scripts.toString());
    assertEquals(List.of(), spooled());
    assertEquals(1, count(stderr(), "\n"), stderr());
    assertTrue(stderr().contains("vm2 reconnect begin: vm2: filterrefs disagree with the metadata"), stderr());
    assertTrue(stderr().contains("run 'uncloud-hook sync vm2'"), stderr());
  }

  @Test
  void theCombinedScriptIsWhatTheSingleCallsWouldApply() throws IOException {
    // one reconnect per domain through HookMain, as without batching
    FakeNftRunner single = new FakeNftRunner();
    for (int n = 1; n <= 2; n++) {
      new HookMain(Map.of("UNCLOUD_HOOK_CONFIG", conf.toString()), new PrintStream(new ByteArrayOutputStream()),
          c -> single).run(new String[] {"vm" + n, "reconnect", "begin", "-"},
          new ByteArrayInputStream(xml(n, "vnet" + n).getBytes(StandardCharsets.UTF_8)));
    }
    String prelude = single.scripts.get(0).substring(0, single.scripts.get(0).indexOf("add chain bridge uncloud port-"));
    // each single script: anti-spoofing, then the inbound prelude and that domain's elements (issue 17);
    // combined: all anti-spoofing, then the inbound prelude once and every domain's elements
    String in = "add table bridge uncloud-inbound ";
    String[] one = {single.scripts.get(0), single.scripts.get(1)};
    int at0 = one[0].indexOf(in);
    int at1 = one[1].indexOf(in);
    String inPrelude = String.join("\n", ch.ungleich.uncloud.hook.nft.InboundScript.prelude()) + "\n";
    assertTrue(one[0].substring(at0).startsWith(inPrelude));
    assertTrue(one[1].substring(at1).startsWith(inPrelude));
    // the elements of both domains, grouped per set into one command each (InboundScript.add)
    List<String> elements = new java.util.ArrayList<>();
    for (String tail : new String[] {one[0].substring(at0 + inPrelude.length()), one[1].substring(at1 + inPrelude.length())}) {
      for (String line : tail.lines().toList()) {
        assertTrue(line.startsWith("add element "), line);
        String set = line.substring("add element ".length(), line.indexOf(" { "));
        for (String e : line.substring(line.indexOf(" { ") + 3, line.length() - 2).split(", ")) {
          elements.add(set + " { " + e + " }");
        }
      }
    }
    String expected = one[0].substring(0, at0) + one[1].substring(prelude.length(), at1) + inPrelude
        + String.join("\n", ch.ungleich.uncloud.hook.nft.InboundScript.add(elements)) + "\n";
    spool("1.xml", xml(1, "vnet1"));
    spool("2.xml", xml(2, "vnet2"));
    batch();
    assertEquals(expected, nft.last());
  }

  @Test
  void invalidDocumentsAreLoggedAndTheOthersApplied() throws IOException {
    spool("1.xml", "<domain><name>broken");
    spool("2.xml", xml(2, "vnet2").replace("192.0.2.2", "192.0.2.0/24x"));
    spool("3.xml", xml(3, "vnet3"));
    assertEquals(ExitCodes.OK, batch());
    assertEquals(1, nft.scripts.size());
    assertTrue(nft.last().contains("port-vnet3"));
    assertFalse(nft.last().contains("port-vnet2"));
    String e = stderr();
    assertEquals(2, e.lines().count(), e);
    assertTrue(e.contains("uncloud-hook: 1.xml reconnect begin: "), e);
    assertTrue(e.contains("uncloud-hook: vm2 reconnect begin: vm2 nic0 52:54:00:aa:bb:02: "), e);
    assertEquals(List.of(), spooled());
  }

  @Test
  void aRefusedTransactionFallsBackToOneDomainAtATime() throws IOException {
    List<String> tried = Collections.synchronizedList(new ArrayList<>());
    NftRunner refusesVnet2 = new NftRunner() {
      @Override
      public void apply(String script) {
        tried.add(script);
        if (script.contains("port-vnet2")) {
          throw new UncloudException(ExitCodes.APPLY_FAILED, "nft failed: no vnet2 today");
        }
      }

      @Override
      public String run(String... args) {
        return "";
      }
    };
    spool("1.xml", xml(1, "vnet1"));
    spool("2.xml", xml(2, "vnet2"));
    spool("3.xml", xml(3, "vnet3"));
    assertEquals(ExitCodes.OK, batch(refusesVnet2, "reconnect", spool.toString()));
    assertEquals(4, tried.size(), "the combined script, then one per domain");
    assertEquals(uuid(1), owner("vnet1"));
    assertEquals(null, owner("vnet2"));
    assertEquals(uuid(3), owner("vnet3"));
    assertTrue(stderr().contains("uncloud-hook: vm2 reconnect begin: nft failed: no vnet2 today"), stderr());
    assertEquals(List.of(), spooled());
  }

  /** vm1 owned vnet5 and now has vnet7; vm2 now has vnet5. Either order in the spool gives the same end. */
  @ParameterizedTest
  @ValueSource(booleans = {true, false})
  void aTapHandedOverWithinOneBatchEndsWithItsNewOwner(boolean newOwnerFirst) throws IOException {
    new HookMain(Map.of("UNCLOUD_HOOK_CONFIG", conf.toString()), new PrintStream(new ByteArrayOutputStream()),
        c -> new FakeNftRunner()).run(new String[] {"vm1", "start", "begin", "-"},
        new ByteArrayInputStream(xml(1, "vnet5").getBytes(StandardCharsets.UTF_8)));
    assertEquals(uuid(1), owner("vnet5"));
    spool(newOwnerFirst ? "1.xml" : "2.xml", xml(2, "vnet5"));
    spool(newOwnerFirst ? "2.xml" : "1.xml", xml(1, "vnet7"));
    batch();
    String s = nft.last();
    assertEquals(uuid(2), owner("vnet5"));
    assertEquals(uuid(1), owner("vnet7"));
    int installed = s.lastIndexOf("add element bridge uncloud ports { \"vnet5\" comment \"vm2 ");
    int removed = s.lastIndexOf("delete chain bridge uncloud port-vnet5");
    assertTrue(installed >= 0, s);
    assertTrue(removed < installed, "vm1's release of vnet5 must not undo vm2's rules:\n" + s);
  }

  @Test
  void staleFilesAreDroppedNotApplied() throws IOException {
    spool("1.xml", xml(1, "vnet1"));
    spool("2.xml", xml(2, "vnet2"));
    Files.setLastModifiedTime(spool.resolve("1.xml"),
        FileTime.fromMillis(System.currentTimeMillis() - (HookBatch.STALE_SECONDS + 60) * 1000));
    assertEquals(ExitCodes.OK, batch());
    assertFalse(nft.last().contains("port-vnet1"));
    assertTrue(nft.last().contains("port-vnet2"));
    assertTrue(stderr().contains("1.xml is older than"), stderr());
    assertEquals(List.of(), spooled());
  }

  @Test
  void dotFilesAndOtherNamesAreNotRead() throws IOException {
    spool(".4.tmp", "<domain><name>half");
    spool(".lock", "");
    spool("1.xml", xml(1, "vnet1"));
    assertEquals(ExitCodes.OK, batch());
    assertEquals(1, nft.scripts.size());
    assertEquals("", stderr());
    assertEquals(List.of(".4.tmp", ".lock"), spooled());
  }

  @Test
  void whenTheHostLockIsHeldTheFilesStayForTheNextRun() throws IOException {
    spool("1.xml", xml(1, "vnet1"));
    try (StateStore.Lock l = new StateStore(tmp.resolve("state").toString(), 1).lock()) {
      assertEquals(ExitCodes.OK, batch());
    }
    assertTrue(nft.scripts.isEmpty());
    assertTrue(stderr().contains("1 domains stay spooled for the next run"), stderr());
    assertEquals(List.of("1.xml"), spooled());
    assertEquals(ExitCodes.OK, batch());
    assertEquals(uuid(1), owner("vnet1"));
    assertEquals(List.of(), spooled());
  }

  @Test
  void nothingSpooledOrNoSpoolDirectoryDoesNothing() throws IOException {
    assertEquals(ExitCodes.OK, batch());
    assertEquals(ExitCodes.OK, batch(nft, "reconnect", tmp.resolve("missing").toString()));
    assertTrue(nft.scripts.isEmpty());
    assertEquals("", stderr());
  }

  @Test
  void aBrokenConfigIsLoggedAndStillExitsZero() throws IOException {
    Files.writeString(conf, "unlisted = maybe\n");
    spool("1.xml", xml(1, "vnet1"));
    assertEquals(ExitCodes.OK, batch());
    assertTrue(nft.scripts.isEmpty());
    assertTrue(stderr().contains("1 domains not re-applied"), stderr());
  }

  @Test
  void aWrongCommandLineIsOneLineAndExitsZero() {
    assertEquals(ExitCodes.OK, batch(nft, "start", spool.toString()));
    assertEquals("uncloud-hook: usage: uncloud-hook hook-batch reconnect SPOOLDIR\n", stderr());
  }

  /** source = etcd: each domain's addresses from its key; a cluster that does not answer is asked once per batch. */
  @Test
  void etcdSourceReadsEachKeyAndAsksADeadClusterOnce() throws IOException {
    try (ch.ungleich.uncloud.hook.source.FakeEtcd etcd = new ch.ungleich.uncloud.hook.source.FakeEtcd()) {
      Files.writeString(conf, Files.readString(conf) + "source = etcd\netcd_endpoints = " + etcd.endpoint() + "\n");
      etcd.kv.put("distributed-firewall/vm/" + uuid(1), "{\"ipv4\": [\"198.51.100.1\"]}");
      etcd.kv.put("distributed-firewall/vm/" + uuid(2), "{\"ipv4\": [\"198.51.100.2\"]}");
      spool("1.xml", xml(1, "vnet1"));
      spool("2.xml", xml(2, "vnet2"));
      assertEquals(ExitCodes.OK, batch());
      assertEquals(1, nft.scripts.size(), stderr());
      assertTrue(nft.last().contains("198.51.100.1") && nft.last().contains("198.51.100.2"), nft.last());
      assertFalse(nft.last().contains("192.0.2.1 "), "not the XML's metadata");

      etcd.failWith = 503;
      int asked = etcd.requests.get();
      for (int n = 3; n <= 5; n++) {
        spool(n + ".xml", xml(n, "vnet" + n));
      }
      assertEquals(ExitCodes.OK, batch());
      assertEquals(1, etcd.requests.get() - asked, "one request for three domains");
      assertEquals(1, nft.scripts.size(), "nothing applied");
      assertEquals(3, stderr().lines().filter(l -> l.contains("no endpoint answered") && l.contains("the VM keeps running")).count(),
          stderr());
      assertTrue(spooled().isEmpty(), "handled (logged), not left for the next run");
    }
  }
}
