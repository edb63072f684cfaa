package ch.ungleich.uncloud.hook.nwfilter;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.invocation.HookMain;
import ch.ungleich.uncloud.hook.nft.FakeNftRunner;
import ch.ungleich.uncloud.libvirtxml.DomainReader;
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
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;
import org.w3c.dom.Element;
import org.xmlunit.builder.DiffBuilder;
import org.xmlunit.builder.Input;
import org.xmlunit.diff.Diff;

/**
 * {@code nwfilter-golden/<case>/domain.xml} (+ optional {@code host.conf}; {@code backend = nwfilter}
 * unless it says otherwise) through the real hook, as libvirt calls it:
 *
 * <ul>
 *   <li>{@code migrate begin}: {@code expected.xml} is the definition libvirt continues with (the hook's
 *       stdout, or the input when stdout is empty). Compared byte for byte and with XMLUnit; and every
 *       byte outside the filterrefs is the input's.
 *   <li>{@code prepare begin}: {@code expected-prepare.txt} is the exit code and stderr.
 *   <li>the rewritten XML passes {@code prepare} (the rewrite and the check agree), and a second
 *       {@code migrate begin} on it prints nothing (idempotent); no nft call ever in nwfilter mode.
 * </ul>
 *
 * {@code mvn test -Dgolden.update=true} rewrites the expected files; review the diff like code.
 */
class NwfilterGoldenTest {
  static final Path ROOT = Path.of("src/test/resources/nwfilter-golden");
  @TempDir Path tmp;

  @TestFactory
  Stream<DynamicTest> golden() throws IOException {
    List<Path> cases;
    try (Stream<Path> s = Files.list(ROOT)) {
      cases = s.filter(Files::isDirectory).sorted().toList();
    }
    assertTrue(cases.size() >= 8, "golden cases missing under " + ROOT.toAbsolutePath());
    return cases.stream().map(dir -> DynamicTest.dynamicTest(dir.getFileName().toString(), () -> check(dir)));
  }

  record Run(int exit, String out, String err, FakeNftRunner nft) {}

  Run hook(Path conf, String xml, String... args) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    FakeNftRunner nft = new FakeNftRunner();
    HookMain h = new HookMain(Map.of("UNCLOUD_HOOK_CONFIG", conf.toString()),
        new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8),
        c -> nft);
    int rc = h.run(args, new ByteArrayInputStream(xml.getBytes(StandardCharsets.UTF_8)));
    return new Run(rc, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8), nft);
  }

  void check(Path dir) throws IOException {
    String name = dir.getFileName().toString();
    Path hostConf = dir.resolve("host.conf");
    String confText = "backend = nwfilter\nstate_dir = " + tmp.resolve("state-" + name) + "\nlog_file =\n"
        + (Files.exists(hostConf) ? Files.readString(hostConf) : "");
    Path conf = tmp.resolve(name + ".conf");
    Files.writeString(conf, confText);
    boolean nwfilter = !confText.contains("backend = nft");
    String input = Files.readString(dir.resolve("domain.xml"));
    String dom = DomainReader.read(input).name;

    Run migrate = hook(conf, input, dom, "migrate", "begin", "-");
    assertEquals(0, migrate.exit(), migrate.err());
    String result = migrate.out().isEmpty() ? input : migrate.out();
    Run prepare = hook(conf, input, dom, "prepare", "begin", "-");
    String prepareText = "exit " + prepare.exit() + "\n" + prepare.err();

    Path expected = dir.resolve("expected.xml");
    Path expectedPrepare = dir.resolve("expected-prepare.txt");
    if (Boolean.getBoolean("golden.update") || !Files.exists(expected)) {
      Files.writeString(expected, result);
      Files.writeString(expectedPrepare, prepareText);
    }
    assertEquals(Files.readString(expected), result, name + ": migrate begin output");
    assertEquals(Files.readString(expectedPrepare), prepareText, name + ": prepare begin");

    Diff d = DiffBuilder.compare(Input.fromString(Files.readString(expected))).withTest(Input.fromString(result))
        .checkForIdentical().build();
    assertFalse(d.hasDifferences(), d.toString());
    // without the filterrefs, input and output are the same document, and the same text
    Diff rest = DiffBuilder.compare(Input.fromString(input)).withTest(Input.fromString(result))
        .withNodeFilter(n -> !(n instanceof Element e && e.getTagName().equals("filterref")))
        .ignoreWhitespace().checkForIdentical().build();
    assertFalse(rest.hasDifferences(), rest.toString());
    assertEquals(withoutFilterrefs(input), withoutFilterrefs(result), name + ": bytes outside filterrefs");

    // printing nothing exactly when nothing changes
    assertEquals(migrate.out().isEmpty(), result.equals(input));
    // the rewritten XML is what prepare accepts, and rewriting it again changes nothing
    Run again = hook(conf, result, dom, "migrate", "begin", "-");
    assertEquals("", again.out(), name + ": second rewrite");
    if (nwfilter) {
      Run ok = hook(conf, result, dom, "prepare", "begin", "-");
      assertEquals(0, ok.exit(), ok.err());
      for (String[] op : List.of(new String[] {"start", "begin"}, new String[] {"reconnect", "begin"},
          new String[] {"stopped", "end"}, new String[] {"release", "end"})) {
        Run r = hook(conf, result, dom, op[0], op[1], "-");
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.nft().scripts.isEmpty(), name + ": nwfilter mode ran nft at " + op[0]);
        assertEquals("", r.out());
      }
    }
  }

  /** The text with every /domain/devices/interface/filterref removed, with its line. */
  static String withoutFilterrefs(String xml) {
    List<FilterrefRewriter.Edit> edits = new ArrayList<>();
    for (FilterrefRewriter.Nic n : FilterrefRewriter.scan(xml)) {
      if (n.hasFilterref()) {
        edits.add(new FilterrefRewriter.Edit(n.index(), null));
      }
    }
    return FilterrefRewriter.rewrite(xml, edits).xml();
  }
}
