package ch.ungleich.uncloud.hook.invocation;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.nft.FakeNftRunner;
import ch.ungleich.uncloud.hook.source.FakeEtcd;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code source = etcd}: the hook calls with the addresses from the domain's etcd key (a loopback stand-in here). */
class HookEtcdTest {
  static final String KEY = "distributed-firewall/vm/" + HookMainTest.UUID;
  @TempDir Path tmp;
  FakeNftRunner nft;
  FakeEtcd etcd;
  ByteArrayOutputStream out;
  ByteArrayOutputStream err;
  Path conf;

  @BeforeEach
  void setUp() throws IOException {
    nft = new FakeNftRunner();
    etcd = new FakeEtcd();
    conf = tmp.resolve("hook.conf");
    settings("", etcd.endpoint());
  }

  @AfterEach
  void tearDown() {
    etcd.close();
  }

  void settings(String extra, String endpoints) throws IOException {
    Files.writeString(conf, "state_dir = " + tmp.resolve("state") + "\nlog_file = " + tmp.resolve("log")
        + "\nsource = etcd\netcd_endpoints = " + endpoints + "\netcd_timeout = 1\n" + extra);
  }

  int hook(String xml, String... args) {
    out = new ByteArrayOutputStream();
    err = new ByteArrayOutputStream();
    HookMain h = new HookMain(Map.of("UNCLOUD_HOOK_CONFIG", conf.toString()), new PrintStream(out, true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8), c -> nft);
    return h.run(args, new ByteArrayInputStream(xml.getBytes(StandardCharsets.UTF_8)));
  }

  String stderr() {
    return err.toString(StandardCharsets.UTF_8);
  }

  @Test
  void startTakesTheAddressesFromEtcdNotFromTheXml() {
    etcd.kv.put(KEY, "{\"ipv4\": [\"198.51.100.20\"], \"ipv6\": [\"2001:db8:20::/64\"]}");
    assertEquals(ExitCodes.OK, hook(HookMainTest.xml(HookMainTest.GOOD, true), "web01", "start", "begin", "-"), stderr());
    assertTrue(nft.last().contains("198.51.100.20") && nft.last().contains("2001:db8:20::/64"), nft.last());
    assertFalse(nft.last().contains("192.0.2.10"), "the XML's metadata is not the source");
  }

  @Test
  void aMissingKeyIsUnlisted() {
    assertEquals(ExitCodes.OK, hook(HookMainTest.xml(HookMainTest.GOOD, true), "web01", "start", "begin", "-"), stderr());
    assertTrue(nft.last().contains("jump port-vnet0"), nft.last());
    assertFalse(nft.last().contains("192.0.2.10"), "the XML's metadata is not used: unlisted (deny) applies");
  }

  @Test
  void theKeyCanBeTheDomainName() throws IOException {
    settings("etcd_vmid = name\netcd_prefix = fw/\n", etcd.endpoint());
    etcd.kv.put("fw/web01", "{\"ipv4\": [\"198.51.100.21\"]}");
    assertEquals(ExitCodes.OK, hook(HookMainTest.xml(null, true), "web01", "start", "begin", "-"), stderr());
    assertTrue(nft.last().contains("198.51.100.21"), nft.last());
  }

  @Test
  void anInvalidValueRefusesEveryStartingCallWithOneLineNamingTheKey() {
    etcd.kv.put(KEY, "{\"ipv4\": [\"198.51.100.0/24\"], \"ipv6\": \"2001:db8::1\"}");
    for (String op : List.of("prepare", "start", "migrate", "restore")) {
      assertEquals(ExitCodes.INVALID, hook(HookMainTest.xml(HookMainTest.GOOD, true), "web01", op, "begin", "-"), op);
      assertEquals("uncloud-hook: web01 etcd key " + KEY + ": \"ipv6\" must be an array of strings, not the string"
          + " \"2001:db8::1\"\n", stderr());
      assertEquals("", out.toString(StandardCharsets.UTF_8));
    }
    assertTrue(nft.scripts.isEmpty());
  }

  @Test
  void noEndpointAnsweringRefusesTheStartAndReconnectKeepsTheRules() throws IOException {
    String closed;
    try (ServerSocket s = new ServerSocket(0)) {
      closed = "http://127.0.0.1:" + s.getLocalPort();
    }
    etcd.kv.put(KEY, "{\"ipv4\": [\"198.51.100.20\"]}");
    assertEquals(ExitCodes.OK, hook(HookMainTest.xml(null, true), "web01", "start", "begin", "-"));
    int applied = nft.scripts.size();
    settings("", closed);
    for (String op : List.of("prepare", "start", "migrate", "restore")) {
      assertEquals(ExitCodes.SOURCE_UNAVAILABLE, hook(HookMainTest.xml(null, true), "web01", op, "begin", "-"), op);
      assertEquals("uncloud-hook: web01: etcd key " + KEY + ": no endpoint answered (" + closed + ": Connection refused)\n",
          stderr());
    }
    assertEquals(ExitCodes.OK, hook(HookMainTest.xml(null, true), "web01", "reconnect", "begin", "-"));
    assertTrue(stderr().contains("no endpoint answered") && stderr().contains("the VM keeps running"), stderr());
    assertEquals(applied, nft.scripts.size(), "nothing applied, nothing removed");
    // stopping needs no addresses: it works without etcd
    assertEquals(ExitCodes.OK, hook(HookMainTest.xml(null, false), "web01", "stopped", "end", "-"));
    assertTrue(nft.last().contains("delete chain bridge uncloud port-vnet0"));
  }

  @Test
  void nwfilterTakesTheFilterrefParametersFromEtcd() throws IOException {
    settings("backend = nwfilter\n", etcd.endpoint());
    etcd.kv.put(KEY, "{\"interfaces\": {\"52:54:00:aa:bb:01\": {\"ipv4\": [\"198.51.100.30\"]}}}");
    assertEquals(ExitCodes.OK, hook(HookMainTest.xml(HookMainTest.GOOD, false), "web01", "migrate", "begin", "-"), stderr());
    String rewritten = out.toString(StandardCharsets.UTF_8);
    assertTrue(rewritten.contains("<parameter name='IPV4' value='198.51.100.30'/>"), rewritten);
    assertFalse(rewritten.contains("value='192.0.2.10'"), rewritten);
    assertEquals(ExitCodes.OK, hook(rewritten, "web01", "prepare", "begin", "-"), stderr());
    etcd.kv.put(KEY, "{\"interfaces\": {\"52:54:00:aa:bb:01\": {\"ipv4\": [\"198.51.100.31\"]}}}");
    assertEquals(ExitCodes.INVALID, hook(rewritten, "web01", "prepare", "begin", "-"));
    assertTrue(stderr().contains("filterrefs disagree"), stderr());
    assertTrue(nft.scripts.isEmpty());
  }
}
