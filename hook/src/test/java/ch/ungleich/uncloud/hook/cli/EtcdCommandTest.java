package ch.ungleich.uncloud.hook.cli;

import static ch.ungleich.uncloud.hook.cli.CliTest.NODE;
import static ch.ungleich.uncloud.hook.cli.CliTest.cli;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.source.FakeEtcd;
import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code etcd get|put|import} against libvirt's test driver and a loopback stand-in for etcd's gateway. */
class EtcdCommandTest {
  static final String KEY1 = "distributed-firewall/vm/11111111-2222-4333-8444-000000000001";
  static final String KEY2 = "distributed-firewall/vm/11111111-2222-4333-8444-000000000002";
  @TempDir Path tmp;
  FakeEtcd etcd;
  String conf;

  @BeforeEach
  void setUp() throws IOException {
    etcd = new FakeEtcd();
    conf = tmp.resolve("c.conf").toString();
    // source = metadata still: import runs before a host switches
    Files.writeString(Path.of(conf), "etcd_endpoints = " + etcd.endpoint() + "\n");
  }

  @AfterEach
  void tearDown() {
    etcd.close();
  }

  @Test
  void putFromMetadataThenGet() {
    CliTest.Run r = cli("etcd", "put", "vm1", "--connect", NODE, "--config-file", conf);
    assertEquals(0, r.exit(), r.err());
    assertEquals("{\"interfaces\":{\"52:54:00:aa:bb:01\":{\"ipv4\":[\"192.0.2.10\"],\"ipv6\":[\"2001:db8:1::/64\"]}}}",
        etcd.kv.get(KEY1));
    r = cli("etcd", "get", "vm1", "--connect", NODE, "--config-file", conf, "--json");
    assertEquals(0, r.exit(), r.err());
    JsonNode j = r.json();
    assertEquals(KEY1, j.get("key").asText());
    assertEquals("52:54:00:aa:bb:01", j.get("interfaces").get(0).get("mac").asText());
    assertEquals("2001:db8:1::/64", j.get("interfaces").get(0).get("ips").get(1).asText());
    assertTrue(j.get("error").isNull());
  }

  /** A value with ingress/egress: validated by put, shown by get --json with the rules as given. */
  @Test
  void putAndGetIngressAndEgress() throws IOException {
    Path f = tmp.resolve("v.json");
    Files.writeString(f, "{\"interfaces\": {\"52:54:00:aa:bb:03\": {\"ipv4\": [\"192.0.2.30\"], \"ingress\": [{\"protocol\": \"tcp\","
        + " \"port\": \"22\", \"from\": \"198.51.100.0/24\"}], \"egress\": [{\"protocol\": \"tcp\", \"from\": \"198.51.100.0/24\"}]}}}");
    CliTest.Run r = cli("etcd", "put", "vm2", "--file", f.toString(), "--connect", NODE, "--config-file", conf);
    assertEquals(1, r.exit());
    assertEquals("uncloud-hook: vm2 nic0 52:54:00:aa:bb:03: egress rule <uc:allow protocol=\"tcp\" from=\"198.51.100.0/24\"/>:"
        + " egress rules take 'to' (the remote side), not 'from'\n", r.err());
    assertNull(etcd.kv.get(KEY2), "nothing written");
    Files.writeString(f, Files.readString(f).replace("\"from\": \"198.51.100.0/24\"}]}}}", "\"to\": \"198.51.100.0/24\"}]}}}"));
    r = cli("etcd", "put", "vm2", "--file", f.toString(), "--connect", NODE, "--config-file", conf);
    assertEquals(0, r.exit(), r.err());
    r = cli("etcd", "get", "vm2", "--connect", NODE, "--config-file", conf, "--json");
    assertEquals(0, r.exit(), r.err());
    JsonNode nic = r.json().get("interfaces").get(0);
    assertEquals("{\"protocol\":\"tcp\",\"port\":\"22\",\"from\":\"198.51.100.0/24\",\"to\":null}", nic.get("ingress").get(0).toString());
    assertEquals("198.51.100.0/24", nic.get("egress").get(0).get("to").asText());
    assertTrue(r.json().get("error").isNull());
  }

  @Test
  void getOfAMissingKeySaysUnlisted() {
    CliTest.Run r = cli("etcd", "get", "vm2", "--connect", NODE, "--config-file", conf);
    assertEquals(0, r.exit(), r.err());
    assertTrue(r.out().contains("(no key: every NIC gets unlisted = deny)"), r.out());
  }

  @Test
  void putValidatesTheFileFirst() throws IOException {
    Path f = tmp.resolve("v.json");
    Files.writeString(f, "{\"ipv4\": [\"192.0.2.30/24\"]}");
    CliTest.Run r = cli("etcd", "put", "vm2", "--file", f.toString(), "--connect", NODE, "--config-file", conf);
    assertEquals(1, r.exit());
    assertEquals("uncloud-hook: vm2 etcd key " + KEY2 + ": ipv4: '192.0.2.30/24' has host bits set; the network is 192.0.2.0/24\n",
        r.err());
    assertNull(etcd.kv.get(KEY2), "nothing written");
    Files.writeString(f, "{\"ipv4\": [\"192.0.2.30\"]}");
    r = cli("etcd", "put", "vm2", "--file", f.toString(), "--connect", NODE, "--config-file", conf, "--json");
    assertEquals(0, r.exit(), r.err());
    assertEquals(7, r.json().get("revision").asInt());
    assertEquals("{\"ipv4\": [\"192.0.2.30\"]}", etcd.kv.get(KEY2));
    // a domain without metadata and no --file: nothing to put
    r = cli("etcd", "put", "vm2", "--connect", NODE, "--config-file", conf);
    assertEquals(1, r.exit());
    assertTrue(r.err().contains("vm2: has no uncloud-hook metadata to put; give --file"), r.err());
  }

  @Test
  void importWritesEveryDomainsMetadataAndLeavesExistingKeys() {
    etcd.kv.put(KEY1, "{\"ipv4\": [\"198.51.100.1\"]}");
    CliTest.Run r = cli("etcd", "import", "--connect", NODE, "--config-file", conf, "--json");
    assertEquals(0, r.exit(), r.err());
    assertEquals("exists", r.json().get(0).get("outcome").asText());
    assertEquals("no-metadata", r.json().get(1).get("outcome").asText());
    assertEquals("{\"ipv4\": [\"198.51.100.1\"]}", etcd.kv.get(KEY1));
    r = cli("etcd", "import", "--overwrite", "--connect", NODE, "--config-file", conf);
    assertEquals(0, r.exit(), r.err());
    assertTrue(r.out().startsWith("vm1 " + KEY1 + ": written\nvm2 " + KEY2 + ": no-metadata\n"), r.out());
    assertTrue(etcd.kv.get(KEY1).contains("192.0.2.10"));
    r = cli("etcd", "import", "--connect", NODE, "--config-file", conf);
    assertTrue(r.out().startsWith("vm1 " + KEY1 + ": same\n"), r.out());
  }

  @Test
  void noEndpointIsExit5() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      Files.writeString(Path.of(conf), "etcd_endpoints = http://127.0.0.1:" + s.getLocalPort() + "\n");
    }
    CliTest.Run r = cli("etcd", "get", "vm1", "--connect", NODE, "--config-file", conf);
    assertEquals(5, r.exit());
    assertTrue(r.err().startsWith("uncloud-hook: etcd key " + KEY1 + ": no endpoint answered (http://127.0.0.1:"), r.err());
    assertEquals(1, r.err().lines().count());
    Files.writeString(Path.of(conf), "");
    r = cli("etcd", "import", "--connect", NODE, "--config-file", conf);
    assertEquals(1, r.exit());
    assertEquals("uncloud-hook: no etcd_endpoints in the host settings\n", r.err());
  }
}
