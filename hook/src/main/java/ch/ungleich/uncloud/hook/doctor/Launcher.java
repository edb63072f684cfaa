package ch.ungleich.uncloud.hook.doctor;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

/**
 * The hook launcher libvirt runs ({@code /etc/libvirt/hooks/qemu} or {@code qemu.d/uncloud-hook}): a
 * small sh script that execs an absolute java with {@code -jar .../uncloud-hook.jar hook "$@"},
 * optionally after setting {@code UNCLOUD_HOOK_CONFIG}. Pure parser; it reads the script's words as sh
 * would (quotes, backslashes), not its semantics.
 *
 * @param java the java program as written (absolute in a good launcher)
 * @param jvmArgs words between java and {@code -jar}
 * @param jar the jar path
 * @param config {@code UNCLOUD_HOOK_CONFIG} as the launcher sets it, or null
 * @param passesArgs whether the command ends in {@code hook "$@"}, or in {@code "$@"} after the script
 *     made {@code hook} its first argument with {@code set -- hook "$@"}
 */
public record Launcher(String java, List<String> jvmArgs, String jar, String config, boolean passesArgs) {

  /** Whether this launcher runs our jar. */
  public boolean ours() {
    return jar.endsWith("uncloud-hook.jar");
  }

  /**
   * Reads a launcher; null when no line runs {@code java ... -jar JAR}. The line that passes the
   * arguments on wins over earlier ones. The installed launcher (reconnect batching) starts with
   * {@code set -- hook "$@"} and runs {@code exec java ... -jar JAR "$@"} in a function.
   */
  public static Launcher parse(String script) {
    if (script == null || !script.startsWith("#!")) {
      return null;
    }
    Launcher first = null;
    String config = null;
    boolean setsHook = false;
    // a backslash at the end of a line continues the command on the next one
    for (String raw : script.replace("\\\n", " ").split("\n")) {
      List<String> w = words(raw);
      if (w.isEmpty()) {
        continue;
      }
      if (w.equals(List.of("set", "--", "hook", "$@"))) {
        setsHook = true;
        continue;
      }
      int i = 0;
      if (w.get(0).equals("export")) {
        i++;
      }
      while (i < w.size() && w.get(i).startsWith("UNCLOUD_HOOK_CONFIG=")) {
        config = w.get(i).substring("UNCLOUD_HOOK_CONFIG=".length());
        i++;
      }
      if (i < w.size() && w.get(i).equals("exec")) {
        i++;
      }
      if (i < w.size() && (w.get(i).equals("env") || w.get(i).endsWith("/env"))) {
        i++;
        while (i < w.size() && w.get(i).matches("[A-Za-z_][A-Za-z0-9_]*=.*")) {
          if (w.get(i).startsWith("UNCLOUD_HOOK_CONFIG=")) {
            config = w.get(i).substring("UNCLOUD_HOOK_CONFIG=".length());
          }
          i++;
        }
      }
      int jar = w.indexOf("-jar");
      if (jar <= i || jar + 1 >= w.size()) {
        continue;
      }
      String java = w.get(i);
      if (!(java.equals("java") || java.endsWith("/java"))) {
        continue;
      }
      List<String> rest = w.subList(jar + 2, w.size());
      boolean passes = rest.size() >= 2 && rest.get(0).equals("hook") && rest.get(1).equals("$@")
          || setsHook && rest.equals(List.of("$@"));
      Launcher l = new Launcher(java, List.copyOf(w.subList(i + 1, jar)), w.get(jar + 1), config, passes);
      if (passes) {
        return l;
      }
      first = first == null ? l : first;
    }
    return first;
  }

  /**
   * The words of one sh line: {@code '...'} literal, {@code "..."} with backslash escapes, a
   * backslash outside quotes escapes the next character, {@code #} at a word start ends the line.
   * {@code "$@"} stays the word {@code $@}.
   */
  static List<String> words(String line) {
    List<String> out = new ArrayList<>();
    StringBuilder cur = null;
    int n = line.length();
    for (int i = 0; i < n; i++) {
      char c = line.charAt(i);
      if (c == ' ' || c == '\t' || c == ';') {
        if (cur != null) {
          out.add(cur.toString());
          cur = null;
        }
        continue;
      }
      if (c == '#' && cur == null) {
        break;
      }
      if (cur == null) {
        cur = new StringBuilder();
      }
      if (c == '\'') {
        int end = line.indexOf('\'', i + 1);
        if (end < 0) {
          end = n;
        }
        cur.append(line, i + 1, end);
        i = end;
      } else if (c == '"') {
        i++;
        while (i < n && line.charAt(i) != '"') {
          if (line.charAt(i) == '\\' && i + 1 < n && "\"\\$`".indexOf(line.charAt(i + 1)) >= 0) {
            i++;
          }
          cur.append(line.charAt(i));
          i++;
        }
      } else if (c == '\\' && i + 1 < n) {
        cur.append(line.charAt(++i));
      } else {
        cur.append(c);
      }
    }
    if (cur != null) {
      out.add(cur.toString());
    }
    return out;
  }

  /** The major version in {@code java -version}'s output ({@code "17.0.15"} 17, {@code "1.8.0_392"} 8); -1 if none. */
  public static int javaMajor(String versionOutput) {
    if (versionOutput == null) {
      return -1;
    }
    var m = Pattern.compile("version \"(\\d+)(?:\\.(\\d+))?[^\"]*\"").matcher(versionOutput);
    if (!m.find()) {
      return -1;
    }
    int major = Integer.parseInt(m.group(1));
    return major == 1 && m.group(2) != null ? Integer.parseInt(m.group(2)) : major;
  }
}
