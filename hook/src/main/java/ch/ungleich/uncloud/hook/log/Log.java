package ch.ungleich.uncloud.hook.log;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.OffsetDateTime;
import java.time.format.DateTimeFormatter;

/**
 * The hook's log: every line to stderr (libvirt shows it when the hook fails) and, with a timestamp,
 * appended to {@code log_file} (libvirt drops a successful hook's stderr, and {@code reconnect} must log
 * and succeed). Never stdout: that belongs to libvirt.
 */
public final class Log {
  private final PrintStream err;
  private String file;

  public Log(PrintStream err) {
    this.err = err;
  }

  public void toFile(String path) {
    this.file = path == null || path.isEmpty() ? null : path;
  }

  /** A line for the file only: routine events that libvirt should not show anyone. */
  public void info(String line) {
    append("info", line);
  }

  /** A line for stderr and the file. */
  public void error(String line) {
    err.println("uncloud-hook: " + line);
    err.flush();
    append("error", line);
  }

  public void warn(String line) {
    err.println("uncloud-hook: warning: " + line);
    err.flush();
    append("warning", line);
  }

  private void append(String level, String line) {
    if (file == null) {
      return;
    }
    String text =
        OffsetDateTime.now().format(DateTimeFormatter.ISO_OFFSET_DATE_TIME) + " " + level + " " + line + "\n";
    try {
      Files.writeString(
          Path.of(file), text, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
    } catch (IOException | RuntimeException e) {
      // a log that cannot be written must not change what libvirt sees; say so once on stderr
      err.println("uncloud-hook: warning: cannot write " + file + ": " + e.getMessage());
      file = null;
    }
  }
}
