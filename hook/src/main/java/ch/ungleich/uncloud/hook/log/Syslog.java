package ch.ungleich.uncloud.hook.log;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The system log ({@code /dev/log}: journald or rsyslog), identifier {@code uncloud-hook}, facility
 * {@code daemon}. Java 17 has no AF_UNIX datagram socket and JNA costs ~190 ms per hook call
 * (native library extraction and class set-up; docs/hook-calls.md#logs), so the lines go to one
 * {@code logger(1)} per process, started at the first line and fed on stdin with a priority prefix per
 * line. {@link #close} ends logger's stdin and waits for it (a few ms): a JVM exiting while its process
 * reaper still waits for a child stalls 300 ms or more in HotSpot's exit (threads in native). No socket
 * or no logger: the lines go to the file only, silently. logger's own stdout and stderr are discarded,
 * never libvirt's.
 *
 * <p>A logger that died (killed, OOM, a broken pipe) is started again at the next line, at most
 * {@link #MAX_RESTARTS} times per {@link #WINDOW_MS}; beyond that the system log is off until the
 * window has passed, then one more start is tried (the agent runs for months: its system log must not
 * stay off for good after one kill, nor fork a logger per line when logger cannot run).
 */
public final class Syslog {
  public static final int ERR = 3;
  public static final int WARNING = 4;
  public static final int INFO = 6;
  private static final int DAEMON = 3;
  static final int MAX_RESTARTS = 5;
  static final long WINDOW_MS = 60_000;

  private final Path socket;
  private Process logger;
  private OutputStream pipe;
  private boolean off;
  /** When the loggers of the current window were started (the first start counts as one). */
  private final java.util.ArrayDeque<Long> starts = new java.util.ArrayDeque<>();
  private long offUntilMs;

  public Syslog(Path socket) {
    this.socket = socket;
  }

  /** Where libc's syslog(3) writes. */
  public static Syslog devLog() {
    return new Syslog(Path.of("/dev/log"));
  }

  /** {@code logger}'s command line; its {@code --id} is this process, so the journal shows the hook's PID. */
  List<String> command() {
    return List.of("logger", "--id=" + ProcessHandle.current().pid(), "-t", "uncloud-hook", "-u", socket.toString(),
        "--prio-prefix", "--socket-errors=off", "-S", "8192");
  }

  /** One stdin line for {@code logger --prio-prefix}: {@code <facility*8+severity>text}, on one line. */
  static String frame(int severity, String line) {
    return "<" + (DAEMON * 8 + severity) + ">" + line.replace('\n', ' ').replace('\r', ' ') + "\n";
  }

  public synchronized void send(int severity, String line) {
    if (off) {
      return;
    }
    byte[] bytes = frame(severity, line).getBytes(StandardCharsets.UTF_8);
    for (int attempt = 0; attempt < 2; attempt++) {
      if (pipe != null && !logger.isAlive()) {
        drop();
      }
      if (pipe == null && !start()) {
        return;
      }
      try {
        pipe.write(bytes);
        pipe.flush();
        return;
      } catch (IOException e) {
        drop(); // died between the check and the write: one more start, within the bound
      }
    }
  }

  /** Starts a logger unless the socket is missing, logger cannot run, or the restart bound is reached. */
  private boolean start() {
    long now = System.currentTimeMillis();
    if (now < offUntilMs) {
      return false;
    }
    while (!starts.isEmpty() && now - starts.peekFirst() >= WINDOW_MS) {
      starts.pollFirst();
    }
    if (starts.size() > MAX_RESTARTS) {
      offUntilMs = starts.peekFirst() + WINDOW_MS;
      return false;
    }
    if (!Files.exists(socket)) {
      off = true;
      return false;
    }
    try {
      logger = new ProcessBuilder(command())
          .redirectOutput(ProcessBuilder.Redirect.DISCARD)
          .redirectError(ProcessBuilder.Redirect.DISCARD)
          .start();
    } catch (IOException | RuntimeException e) {
      off = true; // no logger(1): the file still has the lines
      return false;
    }
    starts.addLast(now);
    pipe = logger.getOutputStream();
    return true;
  }

  private void drop() {
    try {
      pipe.close();
    } catch (IOException e) {
      // it is gone already
    }
    logger.destroy();
    pipe = null;
    logger = null;
  }

  /** The running logger's pid, -1 when there is none (tests). */
  synchronized long loggerPid() {
    return logger == null ? -1 : logger.pid();
  }

  /** Ends logger's input and gives it one second to send the rest and exit (it needs a few ms). */
  public synchronized void close() {
    off = true;
    if (logger == null) {
      return;
    }
    try {
      pipe.close();
      if (!logger.waitFor(1, TimeUnit.SECONDS)) {
        logger.destroy();
      }
    } catch (IOException e) {
      logger.destroy();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    logger = null;
  }
}
