package ch.ungleich.uncloud.hook.cli;

import ch.ungleich.uncloud.hook.libvirt.LibvirtSession;
import ch.ungleich.uncloud.hook.nwfilter.FilterXml;
import ch.ungleich.uncloud.hook.nwfilter.Templates;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code uncloud-hook nwfilter install}: defines the bundled uncloud-* filters in libvirt, or redefines
 * those that differ (libvirt then re-instantiates them on every NIC that uses them). Idempotent: a second
 * run reports every filter unchanged and defines nothing.
 */
@Command(
    name = "install",
    mixinStandardHelpOptions = true,
    description = "Define or update the uncloud-* nwfilters in libvirt (idempotent). Prints one line per"
        + " filter: defined, updated or unchanged.")
final class NwfilterInstallCommand implements Runnable {
  @Spec CommandSpec spec;

  @Option(names = "--connect", paramLabel = "URI", description = "libvirt URI (default: ${DEFAULT-VALUE})")
  String uri = "qemu:///system";

  @Option(names = "--json", description = "JSON output")
  boolean json;

  @Override
  public void run() {
    List<Map<String, Object>> results = new ArrayList<>();
    try (LibvirtSession s = LibvirtSession.open(uri)) {
      for (Templates.Template t : Templates.all()) {
        String existing = s.filterXml(t.name());
        String result;
        if (existing == null) {
          s.defineFilter(t.xml());
          result = "defined";
        } else if (FilterXml.same(t.xml(), existing)) {
          result = "unchanged";
        } else {
          s.defineFilter(t.withUuid(FilterXml.uuid(existing)));
          result = "updated";
        }
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("name", t.name());
        r.put("result", result);
        results.add(r);
      }
    }
    if (json) {
      spec.commandLine().getOut().println(JsonText.of(Map.of("filters", results)));
    } else {
      for (Map<String, Object> r : results) {
        spec.commandLine().getOut().println(r.get("result") + " " + r.get("name"));
      }
    }
    spec.commandLine().getOut().flush();
  }
}
