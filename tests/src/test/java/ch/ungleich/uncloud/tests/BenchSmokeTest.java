package ch.ungleich.uncloud.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The benchmark of issue 7 still runs: {@code tests/bench/run --smoke} (tiny N, one short repetition)
 * exits 0 and prints every section of its table. Its figures mean nothing; what is checked is that the
 * filters (ours, seed-style and libvirt nwfilter, bound by a private libvirtd) are in the data path
 * (spoofed frames dropped), that no restart storm loses a domain's rules, and that the traffic-to-VMs
 * part (issue 17) measured every variant after its real-frame checks passed.
 */
class BenchSmokeTest {
  @TempDir Path tmp;

  @Test
  @Timeout(value = 5, unit = TimeUnit.MINUTES)
  void smokeRunPrintsTheTable() throws IOException, InterruptedException {
    Path root = Path.of(System.getProperty("uncloud.root", ".."));
    Path out = tmp.resolve("stdout");
    ProcessBuilder pb = new ProcessBuilder("bash", root.resolve("tests/bench/run").toString(), "--smoke")
        .redirectOutput(out.toFile())
        .redirectError(tmp.resolve("stderr").toFile());
    pb.environment().put("UCB_JAR", System.getProperty("uncloud.jar", root.resolve("hook/target/uncloud-hook.jar")
        .toString()));
    Process p = pb.start();
    if (!p.waitFor(280, TimeUnit.SECONDS)) {
      p.destroy(); // the runner's trap removes its namespaces
      p.waitFor(20, TimeUnit.SECONDS);
    }
    String stdout = Files.readString(out, StandardCharsets.UTF_8);
    String stderr = Files.readString(tmp.resolve("stderr"), StandardCharsets.UTF_8);
    assertEquals(0, p.exitValue(), "tests/bench/run --smoke failed:\n" + stdout + "\n" + tail(stderr));
    for (String section : new String[] {"## 1. Data plane", "## 2. Control plane", "## 3. Host recovery",
        "## 4. Hook start", "## 5. Restart storm", "## 6. Traffic to VMs"}) {
      assertTrue(stdout.contains(section), section + " missing:\n" + stdout);
    }
    Matcher spoof = Pattern.compile("(\\d+) ports: none (\\d+), ours (\\d+), seed (\\d+)(?:, nwfilter (\\d+))?")
        .matcher(stdout);
    int nwfilter = 0;
    int checked = 0;
    while (spoof.find()) {
      assertTrue(Integer.parseInt(spoof.group(2)) >= 290, "without a filter spoofed frames must arrive: " + spoof.group());
      assertEquals("0", spoof.group(3), "our ruleset let spoofed frames through: " + spoof.group());
      assertEquals("0", spoof.group(4), "the seed-style ruleset let spoofed frames through: " + spoof.group());
      if (spoof.group(5) != null) {
        assertEquals("0", spoof.group(5), "the nwfilter bindings let spoofed frames through: " + spoof.group());
        nwfilter++;
      }
      checked++;
    }
    assertTrue(checked >= 1, "no filter-in-path line:\n" + stdout);
    assertTrue(nwfilter >= 1, "the nwfilter column was not measured:\n" + stdout);
    String storm = stdout.substring(stdout.indexOf("## 5. Restart storm"));
    Matcher intact = Pattern.compile("\\| (\\d+)/(\\d+) +\\|").matcher(storm);
    int rows = 0;
    while (intact.find()) {
      assertEquals(intact.group(2), intact.group(1), "a restart storm lost rules:\n" + storm);
      rows++;
    }
    assertTrue(rows >= 2, "the storm runs once per call and once batched:\n" + storm);

    // traffic to VMs (issue 17): the runner fails unless, in every variant and both families, spoofed frames
    // are dropped by every filter, the measured flows delivered, and udp/tcp to ports without an allow (and
    // udp without an egress allow) dropped exactly where rules apply; here: those checks ran over IPv4 and IPv6,
    // every variant was measured (UDP and TCP over IPv4), and the control plane with 50 rules
    String in = stdout.substring(stdout.indexOf("## 6. Traffic to VMs"));
    Matcher checks = Pattern.compile("in checks \\((\\d+) ports;[^\n]*").matcher(in);
    assertTrue(checks.find(), "no in-checks line:\n" + in);
    for (String v : new String[] {"no filter", "anti-spoofing only", "+ delivery filter", "+ ingress rules",
        "+ ingress and egress"}) {
      for (String fam : new String[] {"IPv4", "IPv6"}) {
        assertTrue(checks.group().contains(v + " " + fam + ": spoofed "), v + " " + fam + " not checked: " + checks.group());
      }
      Matcher row = Pattern.compile("\\| " + Pattern.quote(v) + " +\\| ([0-9,]+) ").matcher(in);
      int measured = 0;
      while (row.find()) {
        assertTrue(Long.parseLong(row.group(1).replace(",", "")) > 0, v + " delivered nothing:\n" + in);
        measured++;
      }
      assertEquals(2, measured, v + ": UDP and TCP rows (IPv4):\n" + in);
    }
    assertTrue(in.contains("start begin, 50 rules"), "control plane with 50 rules missing:\n" + in);
  }

  private static String tail(String s) {
    return s.length() > 4000 ? s.substring(s.length() - 4000) : s;
  }
}
