package ch.ungleich.uncloud.hook.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.source.FakeEtcd;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The CLI brought Jackson (and libvirt-java, picocli, JAXB) into the jar; libvirt's hook call must still
 * load none of them (each costs JVM start-up time three to four times per VM start).
 */
class HookStaysLeanTest {
  @Test
  void hookCallLoadsNoCliLibrary(@TempDir Path tmp) throws Exception {
    // prepare (parse and check only) and start (through the engine, with a stand-in nft that accepts anything)
    for (String op : List.of("prepare", "start")) {
      hookCallLoadsNoCliLibrary(tmp.resolve(op), op, "");
    }
  }

  /** source = etcd adds the JDK's HttpURLConnection and jackson-core's streaming parser, nothing else. */
  @Test
  void etcdSourceLoadsOnlyJacksonCore(@TempDir Path tmp) throws Exception {
    try (FakeEtcd etcd = new FakeEtcd()) {
      etcd.kv.put("distributed-firewall/vm/6d696776-6d31-4000-8000-000000000001", "{\"ipv4\": [\"192.0.2.10\"]}");
      List<String> loaded = hookCallLoadsNoCliLibrary(tmp, "start", "source = etcd\netcd_endpoints = " + etcd.endpoint() + "\n");
      assertTrue(loaded.stream().anyMatch(l -> l.contains(" com.fasterxml.jackson.core.JsonParser ")));
      assertTrue(loaded.stream().anyMatch(l -> l.contains(" ch.ungleich.uncloud.hook.source.EtcdClient ")));
      assertEquals(1, etcd.requests.get());
    }
  }

  private List<String> hookCallLoadsNoCliLibrary(Path tmp, String op, String settings) throws Exception {
    Files.createDirectories(tmp);
    Path conf = tmp.resolve("conf");
    Path nft = tmp.resolve("nft");
    Files.writeString(nft, "#!/bin/sh\ncat >/dev/null\n");
    nft.toFile().setExecutable(true);
    Files.writeString(conf, "state_dir = " + tmp.resolve("state") + "\nlog_file = " + tmp.resolve("log")
        + "\nnft = " + nft + "\n" + settings);
    String xml = Files.readString(Path.of("src/test/resources/golden/issue-example/domain.xml"));
    ProcessBuilder pb =
        new ProcessBuilder(
            Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-verbose:class", "-cp",
            System.getProperty("java.class.path"), "ch.ungleich.uncloud.hook.Main", "hook", "web01", op, "begin", "-");
    pb.environment().put("UNCLOUD_HOOK_CONFIG", conf.toString());
    pb.redirectErrorStream(false);
    Process p = pb.start();
    p.getOutputStream().write(xml.getBytes(StandardCharsets.UTF_8));
    p.getOutputStream().close();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
    assertEquals(0, p.waitFor(), err);
    List<String> loaded = out.lines().filter(l -> l.contains("class,load")).toList();
    assertTrue(loaded.size() > 100, out);
    if (op.equals("start")) {
      assertTrue(loaded.stream().anyMatch(l -> l.contains(" ch.ungleich.uncloud.hook.engine.Rules ")), "start went through the engine");
    }
    List<String> libs = settings.isEmpty() ? List.of("com.fasterxml.") : List.of("com.fasterxml.jackson.databind.");
    for (String lib : Stream.concat(libs.stream(), Stream.of("picocli.", "org.libvirt.", "com.sun.jna.", "jakarta.xml.bind.")).toList()) {
      assertTrue(loaded.stream().noneMatch(l -> l.contains(" " + lib)), "hook path loaded " + lib + ":\n"
          + String.join("\n", loaded.stream().filter(l -> l.contains(" " + lib)).toList()));
    }
    return loaded;
  }
}
