package ch.ungleich.uncloud.tests.lab;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A stand-in for the project's jar with the same calling convention ({@code java -jar JAR hook DOM
 * OP SUBOP EXTRA}, XML on stdin, config from env UNCLOUD_HOOK_CONFIG): it only appends one line per
 * call to the config's {@code log_file} and prints nothing (XML unchanged). It lets the lab prove
 * the launcher/config plumbing and measure what a JVM per hook call costs, without the real hook.
 *
 * <p>Log line: {@code <epoch ms> <op> <subop> dom=<dom> extra=<extra> first=<hook or hook-batch>
 * config=<path> xml=<bytes> tap=<target dev or ->}. For the installed launcher's {@code hook-batch
 * reconnect SPOOLDIR} it writes one {@code reconnect begin} line per spooled call and removes the file.
 */
public final class RecordingHook {
  private RecordingHook() {}

  public static void main(String[] args) throws IOException {
    String conf = System.getenv("UNCLOUD_HOOK_CONFIG");
    String log = null;
    if (conf != null) {
      for (String l : Files.readAllLines(Path.of(conf))) {
        String[] kv = l.split("=", 2);
        if (kv.length == 2 && kv[0].strip().equals("log_file")) {
          log = kv[1].strip();
        }
      }
    }
    if (log == null) {
      System.err.println("recording hook: no log_file in " + conf);
      System.exit(1);
    }
    if (args.length == 3 && args[0].equals("hook-batch") && args[1].equals("reconnect")) {
      // the installed launcher's reconnect batching: one line per spooled call, as if each had come alone
      try (var files = Files.list(Path.of(args[2]))) {
        for (Path f : files.filter(f -> f.getFileName().toString().matches("\\d+\\.xml")).sorted().toList()) {
          byte[] xml = Files.readAllBytes(f);
          Matcher n = Pattern.compile("<name>([^<]+)</name>").matcher(new String(xml, StandardCharsets.UTF_8));
          record(log, "hook-batch", "reconnect", "begin", n.find() ? n.group(1) : "?", "-", conf, xml);
          Files.delete(f);
        }
      }
      return;
    }
    record(log, args.length > 0 ? args[0] : "?", args.length > 2 ? args[2] : "?", args.length > 3 ? args[3] : "?",
        args.length > 1 ? args[1] : "?", args.length > 4 ? args[4] : "?", conf, System.in.readAllBytes());
  }

  private static void record(String log, String first, String op, String sub, String dom, String extra, String conf,
      byte[] xml) throws IOException {
    Matcher m = Pattern.compile("<target dev=['\"]([^'\"]+)['\"]").matcher(new String(xml, StandardCharsets.UTF_8));
    String line = System.currentTimeMillis() + " " + op + " " + sub + " dom=" + dom + " extra=" + extra
        + " first=" + first + " config=" + conf + " xml=" + xml.length + " tap=" + (m.find() ? m.group(1) : "-") + "\n";
    Files.writeString(Path.of(log), line, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
  }

  /** Writes a runnable jar holding only this class (Main-Class RecordingHook) to dir. */
  public static Path jar(Path dir) {
    Path jar = dir.resolve("recording-hook.jar");
    Manifest mf = new Manifest();
    mf.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
    mf.getMainAttributes().put(Attributes.Name.MAIN_CLASS, RecordingHook.class.getName());
    String entry = RecordingHook.class.getName().replace('.', '/') + ".class";
    try (OutputStream o = Files.newOutputStream(jar);
        JarOutputStream j = new JarOutputStream(o, mf);
        InputStream in = RecordingHook.class.getResourceAsStream("/" + entry)) {
      j.putNextEntry(new JarEntry(entry));
      in.transferTo(j);
      j.closeEntry();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return jar;
  }
}
