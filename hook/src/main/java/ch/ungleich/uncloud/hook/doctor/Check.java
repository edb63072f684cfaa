package ch.ungleich.uncloud.hook.doctor;

/**
 * One line of {@code doctor}'s report.
 *
 * @param id what was checked (stable: scripts may match on it), e.g. {@code hook}, {@code nic-metadata}
 * @param status PASS, WARN or FAIL
 * @param subject what it is about (a path, {@code vm1 net0}, ...), or null for the host
 * @param found what was found, one line
 * @param fix the exact fix for WARN and FAIL, null for PASS
 */
public record Check(String id, Status status, String subject, String found, String fix) {

  /** Outcome; FAIL is worse than WARN is worse than PASS. */
  public enum Status {
    PASS,
    WARN,
    FAIL
  }

  public static Check pass(String id, String subject, String found) {
    return new Check(id, Status.PASS, subject, found, null);
  }

  public static Check warn(String id, String subject, String found, String fix) {
    return new Check(id, Status.WARN, subject, found, fix);
  }

  public static Check fail(String id, String subject, String found, String fix) {
    return new Check(id, Status.FAIL, subject, found, fix);
  }

  /** {@code PASS  hook  /etc/libvirt/hooks/qemu: ...}; WARN and FAIL end with {@code -> fix: ...}. */
  public String line() {
    return String.format("%-4s  %-17s %s%s%s", status, id, subject == null ? "" : subject + ": ", found,
        fix == null ? "" : "  -> fix: " + fix);
  }
}
