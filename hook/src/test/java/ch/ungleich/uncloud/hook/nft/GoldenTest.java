package ch.ungleich.uncloud.hook.nft;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.metadata.PolicyBuilder;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.libvirtxml.DomainReader;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * {@code golden/<case>/domain.xml} (+ optional {@code host.conf}) -> {@code expected.nft}: the exact
 * transaction {@code start begin} applies on a host with no state. Byte for byte.
 * {@code mvn test -Dgolden.update=true} rewrites the files; review the diff like code.
 */
class GoldenTest {
  static final Path ROOT = Path.of("src/test/resources/golden");

  @TestFactory
  Stream<DynamicTest> golden() throws IOException {
    List<Path> cases;
    try (Stream<Path> s = Files.list(ROOT)) {
      cases = s.filter(Files::isDirectory).sorted().toList();
    }
    assertTrue(cases.size() >= 5, "golden cases missing under " + ROOT.toAbsolutePath());
    return cases.stream().map(dir -> DynamicTest.dynamicTest(dir.getFileName().toString(), () -> check(dir)));
  }

  static void check(Path dir) throws IOException {
    Path conf = dir.resolve("host.conf");
    Config config = Files.exists(conf) ? Config.parse(Files.readString(conf), conf.toString()) : Config.defaults();
    DomainPolicy p = PolicyBuilder.build(DomainReader.read(Files.readString(dir.resolve("domain.xml"))), config);
    String actual = NftBackend.start(p, List.of(), tap -> null, config.vmTaps().patterns()).script();
    Path expected = dir.resolve("expected.nft");
    if (Boolean.getBoolean("golden.update") || !Files.exists(expected)) {
      Files.writeString(expected, actual);
    }
    assertEquals(Files.readString(expected), actual, dir.toString());
  }
}
