package ch.ungleich.uncloud.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * Issue 14: CI runs exactly the README's quick start. The command lines of the README's "Quick start"
 * code block and the {@code run '…'} lines of {@code .ci/run} are the same, in the same order, and
 * {@code .ci/run} runs nothing else but {@code apt-get update}. No root, no network.
 */
class QuickStartTest {
  private static final Path ROOT = Path.of(System.getProperty("uncloud.root", "..")).toAbsolutePath().normalize();
  private static final Pattern RUN = Pattern.compile("run '([^']*)'");
  /** What .ci/run may hold besides its run lines (and comments, blank lines). */
  private static final Set<String> PLUMBING = Set.of("#!/usr/bin/env bash", "set -euo pipefail",
      "cd \"$(dirname \"$0\")/..\"", "export DEBIAN_FRONTEND=noninteractive",
      "run() { echo \"+ $1\"; bash -euo pipefail -c \"$1\"; }", "apt-get update -q");

  /** The command lines of the first fenced block after the "## Quick start" heading. */
  static List<String> readmeLines(String readme) {
    int h = readme.indexOf("\n## Quick start\n");
    assertTrue(h >= 0, "README has a '## Quick start' section");
    int open = readme.indexOf("\n```", h);
    int start = readme.indexOf('\n', open + 1) + 1;
    int end = readme.indexOf("\n```", start);
    assertTrue(open > 0 && end > start && readme.indexOf("\n## ", h + 1) > end, "a code block in Quick start");
    List<String> out = new ArrayList<>();
    for (String l : readme.substring(start, end).split("\n")) {
      if (!l.isBlank() && !l.strip().startsWith("#")) {
        out.add(l.strip());
      }
    }
    return out;
  }

  /** The commands of .ci/run's {@code run '…'} lines; fails on any other command. */
  static List<String> ciLines(String ci) {
    List<String> out = new ArrayList<>();
    for (String l : ci.split("\n")) {
      String t = l.strip();
      if (t.isEmpty() || (t.startsWith("#") && !t.startsWith("#!"))) {
        continue;
      }
      Matcher m = RUN.matcher(t);
      if (m.matches()) {
        out.add(m.group(1));
      } else {
        assertTrue(PLUMBING.contains(t), ".ci/run runs something the README does not tell a user to run: " + t);
      }
    }
    return out;
  }

  @Test
  void ciRunsExactlyTheReadmesTwoLines() throws IOException {
    List<String> readme = readmeLines(Files.readString(ROOT.resolve("README.md")));
    assertEquals(2, readme.size(), "two command lines in the quick start: " + readme);
    assertEquals(readme, ciLines(Files.readString(ROOT.resolve(".ci/run"))));
  }

  @Test
  void extractionSeesADifference() {
    String readme = "x\n## Quick start\n\n```sh\na && b\nmvn -B verify\n```\n\n## Next\n";
    assertEquals(List.of("a && b", "mvn -B verify"), readmeLines(readme));
    assertEquals(List.of("a && b", "mvn verify"), ciLines("# c\nset -euo pipefail\nrun 'a && b'\nrun 'mvn verify'\n"));
    org.junit.jupiter.api.Assertions.assertThrows(AssertionError.class, () -> ciLines("apt-get install -y gcc\n"));
  }
}
