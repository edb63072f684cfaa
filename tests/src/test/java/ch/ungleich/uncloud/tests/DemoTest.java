package ch.ungleich.uncloud.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * {@code uncloud-hook demo} end to end, as root: the real hook on throwaway namespaces, real frames.
 * Namespaces carry the prefix uci-dt so they never collide with other tests.
 */
class DemoTest {
  private static final String JAR = System.getProperty("uncloud.jar", "../hook/target/uncloud-hook.jar");
  private static final String JAVA = ProcessHandle.current().info().command().orElse("java");

  private static List<String> leftovers(String prefix) throws IOException, InterruptedException {
    Process p = new ProcessBuilder("ip", "netns", "list").redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    p.waitFor();
    List<String> ns = out.lines().map(l -> l.split(" ")[0]).filter(n -> n.startsWith(prefix + "-")).toList();
    try (Stream<Path> s = Files.list(Path.of("/tmp"))) {
      return Stream.concat(ns.stream(), s.map(Path::toString).filter(f -> f.startsWith("/tmp/" + prefix + "-")))
          .toList();
    }
  }

  @AfterAll
  static void cleanUp() throws Exception {
    for (String prefix : List.of("uci-dt1", "uci-dt2")) {
      for (String n : leftovers(prefix)) {
        if (!n.startsWith("/")) {
          new ProcessBuilder("ip", "netns", "del", n).start().waitFor();
        }
      }
    }
  }

  @Test
  void demoDeliversTheLegitimateFramesAndDropsTheSpoofedOnes() throws Exception {
    Process p = new ProcessBuilder(JAVA, "-jar", JAR, "demo", "--prefix", "uci-dt1").redirectErrorStream(true).start();
    p.getOutputStream().close();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(120, TimeUnit.SECONDS));
    assertEquals(0, p.exitValue(), out);
    assertTrue(out.contains("13 of 13 frames as expected"), out);
    assertTrue(out.matches("(?s).*port-vnet0 +0 packets dropped.*"), out);
    assertTrue(out.matches("(?s).*port-vnet1 +8 packets dropped.*"), out);
    assertTrue(out.contains("after stopped/release: both port chains removed"), out);
    assertEquals(List.of(), leftovers("uci-dt1"), out);
  }

  @Test
  void interruptedDemoCleansUp() throws Exception {
    Process p = new ProcessBuilder(JAVA, "-jar", JAR, "demo", "--prefix", "uci-dt2").redirectErrorStream(true).start();
    p.getOutputStream().close();
    StringBuilder seen = new StringBuilder();
    try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
      String line;
      while ((line = r.readLine()) != null) {
        seen.append(line).append('\n');
        if (line.startsWith("hook: ")) {
          break; // the lab exists now
        }
      }
      assertTrue(leftovers("uci-dt2").size() >= 4, seen.toString());
      p.toHandle().destroy(); // SIGTERM (keeps our end of the pipe open): the shutdown hook runs, as on Ctrl-C
      assertTrue(p.waitFor(60, TimeUnit.SECONDS));
      r.lines().forEach(l -> seen.append(l).append('\n'));
    }
    assertEquals(List.of(), leftovers("uci-dt2"), seen.toString());
    assertTrue(seen.toString().contains("interrupted; removed"), seen.toString());
  }
}
