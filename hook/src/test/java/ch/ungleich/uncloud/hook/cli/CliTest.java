package ch.ungleich.uncloud.hook.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * The commands through {@link Cli#run}, with libvirt's in-process test driver ({@code test:///FILE},
 * no daemon) or no libvirt at all ({@code plan --xml}). Everything that needs nft or a real libvirtd
 * is in the tests module.
 */
class CliTest {
  static final String NODE = "test://" + Path.of("src/test/resources/cli/node.xml").toAbsolutePath();
  static final ObjectMapper JSON = new ObjectMapper();

  record Run(int exit, String out, String err) {
    JsonNode json() {
      try {
        return JSON.readTree(out);
      } catch (Exception e) {
        throw new AssertionError("not JSON: " + out, e);
      }
    }
  }

  static Run cli(String... args) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int rc = Cli.run(args, new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
    return new Run(rc, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
  }

  static List<String> keys(JsonNode n) {
    List<String> out = new ArrayList<>();
    for (Iterator<String> i = n.fieldNames(); i.hasNext(); ) {
      out.add(i.next());
    }
    return out;
  }

  @TestFactory
  Stream<DynamicTest> everyCommandHasHelpJsonConnectAndExitCodes() {
    return Stream.of("doctor", "status", "plan", "reconcile", "metadata show", "metadata set", "etcd get", "etcd put", "etcd import")
        .map(c -> DynamicTest.dynamicTest(c, () -> {
          List<String> args = new ArrayList<>(List.of(c.split(" ")));
          args.add("--help");
          Run r = cli(args.toArray(String[]::new));
          assertEquals(0, r.exit(), r.err());
          for (String s : List.of("--json", "--connect=URI", "--config-file=FILE", "Exit codes:")) {
            assertTrue(r.out().contains(s), c + " --help lacks " + s + ":\n" + r.out());
          }
        }));
  }

  @Test
  void wrongCommandLineIsExit2() {
    Run r = cli("plan");
    assertEquals(2, r.exit());
    assertTrue(r.err().contains("Missing required"), r.err());
    assertEquals(2, cli("status", "--no-such-option").exit());
  }

  @TestFactory
  Stream<DynamicTest> planOfAFileIsWhatTheHookInstalls() throws Exception {
    Path root = Path.of("src/test/resources/golden");
    List<Path> cases;
    try (Stream<Path> s = Files.list(root)) {
      cases = s.filter(Files::isDirectory).sorted().toList();
    }
    return cases.stream().map(dir -> DynamicTest.dynamicTest(dir.getFileName().toString(), () -> {
      List<String> args = new ArrayList<>(List.of("plan", "--xml", dir.resolve("domain.xml").toString()));
      if (Files.exists(dir.resolve("host.conf"))) {
        args.addAll(List.of("--config-file", dir.resolve("host.conf").toString()));
      } else {
        args.addAll(List.of("--config-file", "/nonexistent/uncloud-hook.conf"));
      }
      Run text = cli(args.toArray(String[]::new));
      assertEquals(0, text.exit(), text.err());
      String expected = Files.readString(dir.resolve("expected.nft"));
      String script = String.join("", text.out().lines().filter(l -> !l.startsWith("#")).map(l -> l + "\n").toList());
      // the anti-spoofing part is the golden file; the delivery filter / security groups follow (issue 17)
      String inPrelude = String.join("\n", ch.ungleich.uncloud.hook.nft.InboundScript.prelude()) + "\n";
      int in = script.indexOf(inPrelude);
      if (in >= 0) {
        assertTrue(script.substring(in + inPrelude.length()).lines().allMatch(l -> l.startsWith("add element ")), script);
        script = script.substring(0, in);
      }
      assertEquals(expected, script);
      args.add("--json");
      JsonNode j = cli(args.toArray(String[]::new)).json();
      String js = j.get("script").asText();
      assertEquals(expected, js.contains(inPrelude) ? js.substring(0, js.indexOf(inPrelude)) : js);
      assertEquals(
          List.of("domain", "uuid", "backend", "running", "placeholder_taps", "nics", "warnings", "script", "filterrefs"), keys(j));
      assertEquals(
          List.of("name", "mac", "tap", "type", "mode", "reason", "ipv4", "ipv6", "rules", "dropped", "inbound"), keys(j.get("nics").get(0)));
    }));
  }

  @Test
  void planRefusesInvalidMetadataWithOneLine(@TempDir Path tmp) throws Exception {
    Path xml = tmp.resolve("d.xml");
    Files.writeString(xml, Files.readString(Path.of("src/test/resources/golden/issue-example/domain.xml")).replace("192.0.2.10", "127.0.0.1"));
    Run r = cli("plan", "--xml", xml.toString(), "--config-file", "/nonexistent");
    assertEquals(1, r.exit());
    assertEquals(1, r.err().strip().lines().count(), r.err());
    assertTrue(r.err().startsWith("uncloud-hook: "), r.err());
    assertTrue(r.err().contains("loopback"), r.err());
    assertEquals("", r.out());
  }

  @Test
  void planOfADefinedDomain() {
    Run r = cli("plan", "vm1", "--connect", NODE, "--config-file", "/nonexistent", "--json");
    assertEquals(0, r.exit(), r.err());
    JsonNode j = r.json();
    assertEquals("vm1", j.get("domain").asText());
    assertEquals("testnet0", j.get("nics").get(0).get("tap").asText());
    assertEquals("unfiltered", j.get("nics").get(1).get("mode").asText());
    assertTrue(j.get("script").asText().contains("ip saddr != 192.0.2.10 counter drop"), j.get("script").asText());
    assertTrue(j.get("warnings").get(0).asText().contains("NOT protected"));
  }

  @Test
  void planForTheNwfilterBackendGivesFilterrefs() {
    Run r = cli("plan", "vm1", "--connect", NODE, "--config-file", "/nonexistent", "--backend", "nwfilter", "--json");
    assertEquals(0, r.exit(), r.err());
    JsonNode j = r.json();
    assertTrue(j.get("script").isNull());
    JsonNode f = j.get("filterrefs");
    assertEquals(List.of("name", "mac", "filterref"), keys(f.get(0)));
    String ref = f.get(0).get("filterref").asText();
    assertTrue(ref.startsWith("<filterref filter='uncloud-clean-traffic'>"), ref);
    assertTrue(ref.contains("<parameter name='IPV4' value='192.0.2.10'/>"), ref);
    assertTrue(f.get(1).get("filterref").isNull()); // the macvtap NIC carries none of ours
    Run text = cli("plan", "vm1", "--connect", NODE, "--config-file", "/nonexistent", "--backend", "nwfilter");
    assertTrue(text.out().contains("<!-- net0 52:54:00:aa:bb:01 -->") || text.out().contains("<!-- nic0 52:54:00:aa:bb:01 -->"), text.out());
  }

  @Test
  void metadataShow() {
    Run r = cli("metadata", "show", "vm1", "--connect", NODE, "--config-file", "/nonexistent", "--json");
    assertEquals(0, r.exit(), r.err());
    JsonNode j = r.json();
    assertEquals(List.of("domain", "uuid", "running", "persistent", "live", "config", "agree", "error"), keys(j));
    assertEquals(List.of("192.0.2.10", "2001:db8:1::/64"), List.of(
        j.get("live").get("interfaces").get(0).get("ips").get(0).asText(), j.get("live").get("interfaces").get(0).get("ips").get(1).asText()));
    assertTrue(j.get("agree").asBoolean());
    Run none = cli("metadata", "show", "vm2", "--connect", NODE, "--config-file", "/nonexistent", "--json");
    assertTrue(none.json().get("live").isNull());
  }

  @Test
  void metadataSetValidatesBeforeWriting() {
    String[] base = {"metadata", "set", "vm2", "--connect", NODE, "--config-file", "/nonexistent"};
    Run notYet = cli(concat(base, "--mac", "52:54:00:aa:bb:99", "--ip", "192.0.2.300"));
    assertEquals(1, notYet.exit(), "an entry for a NIC not attached yet is checked too: " + notYet.err());
    Run badIp = cli(concat(base, "--mac", "52:54:00:aa:bb:03", "--ip", "192.0.2.300"));
    assertEquals(1, badIp.exit());
    Run clash = cli(concat(base, "--mac", "52:54:00:aa:bb:03", "--ip", "192.0.2.0/28"));
    assertEquals(1, clash.exit());
    assertTrue(clash.err().contains("overlaps 192.0.2.10 of vm1"), clash.err());
    Run nothing = cli(base);
    assertEquals(2, nothing.exit());
    Run ok = cli(concat(base, "--mac", "52:54:00:AA:BB:03", "--ip", "192.0.2.30", "--ip", "2001:db8:3::1", "--json"));
    assertEquals(0, ok.exit(), ok.err());
    JsonNode j = ok.json();
    assertEquals(List.of("domain", "uuid", "written", "xml", "reconcile"), keys(j));
    assertEquals("[\"live\",\"config\"]", j.get("written").toString());
    assertTrue(j.get("xml").asText().contains("<uc:interface mac=\"52:54:00:aa:bb:03\">"), j.get("xml").asText());
    assertTrue(j.get("xml").asText().contains("<uc:ip address=\"2001:db8:3::1\"/>"), j.get("xml").asText());
    Run forced = cli(concat(base, "--mac", "52:54:00:aa:bb:03", "--ip", "192.0.2.10", "--force", "--config"));
    assertEquals(0, forced.exit(), forced.err());
    assertTrue(forced.out().startsWith("vm2: metadata written to the config definition"), forced.out());
  }

  @Test
  void libvirtFailureIsExit3() {
    Run r = cli("status", "--connect", "test:///nonexistent/file.xml", "--config-file", "/nonexistent");
    assertEquals(3, r.exit());
    assertTrue(r.err().startsWith("uncloud-hook: cannot connect to libvirt at test:///nonexistent/file.xml"), r.err());
    assertEquals(1, r.err().strip().lines().count(), r.err());
  }

  static String[] concat(String[] a, String... b) {
    String[] out = new String[a.length + b.length];
    System.arraycopy(a, 0, out, 0, a.length);
    System.arraycopy(b, 0, out, a.length, b.length);
    return out;
  }
}
