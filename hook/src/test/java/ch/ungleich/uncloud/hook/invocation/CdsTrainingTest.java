package ch.ungleich.uncloud.hook.invocation;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The CDS training run goes through both sources, and the etcd one gets the same addresses. */
class CdsTrainingTest {
  @Test
  void startsOnceFromMetadataAndOnceFromTheEtcdStandIn(@TempDir Path tmp) throws Exception {
    Path nft = tmp.resolve("nft");
    Files.writeString(nft, "#!/bin/sh\ncat >> " + tmp.resolve("scripts") + "\necho '# end' >> " + tmp.resolve("scripts") + "\n");
    nft.toFile().setExecutable(true);
    Files.writeString(tmp.resolve("conf"), "state_dir = " + tmp.resolve("state") + "\nlog_file = " + tmp.resolve("log")
        + "\nnft = " + nft + "\n");
    // the domain install/files/setup trains with
    String setup = Files.readString(Path.of("../install/files/setup"));
    Files.writeString(tmp.resolve("domain.xml"), setup.substring(setup.indexOf("<domain"), setup.indexOf("</domain>") + 9));
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    assertEquals(0, CdsTraining.main(new String[] {tmp.toString()}, new PrintStream(err, true, StandardCharsets.UTF_8)));
    assertEquals("", err.toString(StandardCharsets.UTF_8));
    assertTrue(Files.readString(tmp.resolve("conf-etcd")).contains("source = etcd"));
    String log = Files.readString(tmp.resolve("log"));
    assertEquals(2, log.lines().filter(l -> l.contains("cds-training start begin: filtering net0 52:54:00:00:00:01 vnet0 filter (")).count(), log);
    // the etcd run got the same addresses (a missing key would have been unlisted: a new port chain without them)
    String scripts = Files.readString(tmp.resolve("scripts"));
    String last = scripts.substring(scripts.lastIndexOf("add table"));
    assertTrue(scripts.contains("192.0.2.10"), scripts);
    assertFalse(last.contains("add chain bridge uncloud port-vnet0") && !last.contains("192.0.2.10"), last);
    assertFalse(log.contains("error"), log);
  }
}
