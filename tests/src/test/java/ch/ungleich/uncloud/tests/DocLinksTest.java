package ch.ungleich.uncloud.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Every relative link in the repository's Markdown (README.md, docs/, tests/README.md, ...) points to a
 * file that exists and, with {@code #anchor}, to a heading of that file, anchored the way GitHub does it.
 * No root, no network: external (scheme) links are not fetched.
 */
class DocLinksTest {
  private static final Path ROOT = Path.of(System.getProperty("uncloud.root", "..")).toAbsolutePath().normalize();

  /** {@code [text](target)} or {@code ![alt](target)}; text may hold one level of brackets. */
  private static final Pattern LINK = Pattern.compile("!?\\[((?:[^\\[\\]]|\\[[^\\]]*\\])*)\\]\\(\\s*<?([^)\\s>]*)>?(?:\\s+\"[^\"]*\")?\\s*\\)");
  private static final Pattern HEADING = Pattern.compile("^ {0,3}(#{1,6})\\s+(.*?)\\s*#*\\s*$");
  private static final Pattern SCHEME = Pattern.compile("^[a-zA-Z][a-zA-Z0-9+.-]*:");

  /** The anchors GitHub gives a file's headings: slug of the rendered text, duplicates get -1, -2, .... */
  static Set<String> anchors(String markdown) {
    Set<String> out = new LinkedHashSet<>();
    Map<String, Integer> seen = new HashMap<>();
    for (String line : proseLines(markdown, false)) {
      Matcher m = HEADING.matcher(line);
      if (!m.matches()) {
        continue;
      }
      String slug = slug(m.group(2));
      int n = seen.merge(slug, 1, Integer::sum) - 1;
      out.add(n == 0 ? slug : slug + "-" + n);
    }
    return out;
  }

  /** GitHub's slug: rendered text, lower case, everything but letters, digits, '_', '-' and ' ' dropped, spaces to '-'. */
  static String slug(String heading) {
    String text = heading
        .replaceAll("!?\\[((?:[^\\[\\]]|\\[[^\\]]*\\])*)\\]\\([^)]*\\)", "$1") // links: their text
        .replaceAll("<[^>]+>", "") // inline HTML tags
        .replace("`", "")
        .replaceAll("(\\*\\*|__|\\*|~~)", "");
    StringBuilder b = new StringBuilder();
    text.toLowerCase(Locale.ROOT).codePoints().forEach(c -> {
      if (Character.isLetterOrDigit(c) || c == '_' || c == '-') {
        b.appendCodePoint(c);
      } else if (c == ' ') {
        b.append('-');
      }
    });
    return b.toString();
  }

  /** The lines outside fenced and indented code blocks, with inline code spans blanked. */
  static List<String> proseLines(String markdown) {
    return proseLines(markdown, true);
  }

  /** The lines outside fenced and indented code blocks; inline code spans blanked if asked. */
  static List<String> proseLines(String markdown, boolean blankCodeSpans) {
    List<String> out = new ArrayList<>();
    String fence = null;
    boolean previousBlank = true;
    boolean inIndented = false;
    for (String line : markdown.split("\n", -1)) {
      String t = line.stripLeading();
      if (fence != null) {
        if (t.startsWith(fence)) {
          fence = null;
        }
        previousBlank = false;
        continue;
      }
      if (t.startsWith("```") || t.startsWith("~~~")) {
        fence = t.substring(0, 3);
        continue;
      }
      boolean blank = line.isBlank();
      boolean indented = line.startsWith("    ") || line.startsWith("\t");
      if (indented && (previousBlank || inIndented) && !blank) {
        inIndented = true;
        previousBlank = false;
        continue;
      }
      if (!blank) {
        inIndented = false;
      }
      previousBlank = blank;
      out.add(blankCodeSpans ? line.replaceAll("(`+)(?:(?!\\1).)+?\\1", "``") : line);
    }
    return out;
  }

  /** Problems of one file's links: "file:line: target: why". */
  static List<String> brokenLinks(Path file, String markdown, Path root) throws IOException {
    List<String> problems = new ArrayList<>();
    List<String> lines = proseLines(markdown);
    String rel = root.relativize(file).toString();
    for (int i = 0; i < lines.size(); i++) {
      Matcher m = LINK.matcher(lines.get(i));
      while (m.find()) {
        String target = m.group(2);
        if (target.isEmpty()) {
          problems.add(rel + ": [" + m.group(1) + "]: empty link");
          continue;
        }
        if (SCHEME.matcher(target).find()) {
          continue;
        }
        int hash = target.indexOf('#');
        String path = hash < 0 ? target : target.substring(0, hash);
        String anchor = hash < 0 ? null : target.substring(hash + 1);
        Path to = path.isEmpty() ? file : file.getParent().resolve(path).normalize();
        if (!to.startsWith(root)) {
          problems.add(rel + ": " + target + ": points outside the repository");
          continue;
        }
        if (!Files.exists(to)) {
          problems.add(rel + ": " + target + ": no such file " + root.relativize(to));
          continue;
        }
        if (anchor != null) {
          if (Files.isDirectory(to) || !to.toString().endsWith(".md")) {
            problems.add(rel + ": " + target + ": an anchor into something that is not a Markdown file");
          } else if (!anchors(Files.readString(to, StandardCharsets.UTF_8)).contains(anchor)) {
            problems.add(rel + ": " + target + ": no heading #" + anchor + " in " + root.relativize(to)
                + " (has " + anchors(Files.readString(to, StandardCharsets.UTF_8)) + ")");
          }
        }
      }
    }
    return problems;
  }

  static List<Path> markdownFiles(Path root) throws IOException {
    try (Stream<Path> s = Files.walk(root)) {
      return s.filter(p -> p.toString().endsWith(".md"))
          .filter(p -> {
            Path r = root.relativize(p);
            for (Path part : r) {
              String n = part.toString();
              if (n.equals("target") || n.startsWith(".") || n.equals("node_modules")) {
                return false;
              }
            }
            return true;
          })
          .sorted()
          .toList();
    }
  }

  @Test
  void everyLinkInTheDocsPointsToAFileOrHeadingThatExists() throws IOException {
    List<Path> files = markdownFiles(ROOT);
    assertTrue(files.contains(ROOT.resolve("README.md")), "README.md not found under " + ROOT);
    assertTrue(files.stream().anyMatch(p -> p.startsWith(ROOT.resolve("docs"))), "no docs/*.md under " + ROOT);
    List<String> problems = new ArrayList<>();
    int links = 0;
    for (Path f : files) {
      String md = Files.readString(f, StandardCharsets.UTF_8);
      for (String l : proseLines(md)) {
        Matcher m = LINK.matcher(l);
        while (m.find()) {
          links++;
        }
      }
      problems.addAll(brokenLinks(f, md, ROOT));
    }
    System.out.println("DocLinksTest: " + links + " links in " + files.size() + " Markdown files, "
        + problems.size() + " broken");
    assertEquals(List.of(), problems);
  }

  @Test
  void everyDocsFileIsLinkedFromTheReadme() throws IOException {
    String readme = Files.readString(ROOT.resolve("README.md"), StandardCharsets.UTF_8);
    List<String> unlinked = new ArrayList<>();
    try (Stream<Path> s = Files.list(ROOT.resolve("docs"))) {
      for (Path p : s.filter(p -> p.toString().endsWith(".md")).sorted().toList()) {
        if (!readme.contains("](docs/" + p.getFileName() + ")") && !readme.contains("](docs/" + p.getFileName() + "#")) {
          unlinked.add("docs/" + p.getFileName());
        }
      }
    }
    assertEquals(List.of(), unlinked, "docs files the README does not link to");
  }

  @Test
  void theCheckerFindsBrokenLinksAndComputesGithubAnchors(@org.junit.jupiter.api.io.TempDir Path dir) throws IOException {
    Files.writeString(dir.resolve("a.md"), String.join("\n",
        "# Title",
        "## `uncloud-hook plan DOMAIN | --xml FILE`",
        "## Restart storms: reconnect batching",
        "## Title",
        "```",
        "# not a heading [x](nowhere.md)",
        "```",
        "[ok](#title) [ok](#title-1) [ok](#uncloud-hook-plan-domain----xml-file) [ok](b.md)",
        "[ok](#restart-storms-reconnect-batching) [ext](https://example.org/x) `[code](nowhere.md)`",
        "[bad](missing.md) [bad](#nope) [bad](b.md#nope)",
        ""));
    Files.writeString(dir.resolve("b.md"), "# B\n");
    List<String> problems = brokenLinks(dir.resolve("a.md"), Files.readString(dir.resolve("a.md")), dir);
    assertEquals(3, problems.size(), problems.toString());
    assertTrue(problems.get(0).contains("missing.md: no such file"), problems.toString());
    assertTrue(problems.get(1).contains("#nope: no heading"), problems.toString());
    assertTrue(problems.get(2).contains("b.md#nope: no heading"), problems.toString());
  }
}
