# Writes kennel_version.h with the commit the sources are at, on every build
# (not only at configure time, which left `kennel version` naming an old
# commit after a rebuild). "-dirty" marks uncommitted changes to tracked files.
# The file is rewritten only when its text changes, so nothing recompiles
# needlessly. Run with -DSOURCE_DIR= -DOUTPUT= -DPROJECT_VERSION= -P.
execute_process(COMMAND git -C ${SOURCE_DIR} rev-parse --short=12 HEAD
  OUTPUT_VARIABLE KENNEL_GIT_COMMIT OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT KENNEL_GIT_COMMIT)
  set(KENNEL_GIT_COMMIT unknown)
else()
  execute_process(COMMAND git -C ${SOURCE_DIR} status --porcelain --untracked-files=no
    OUTPUT_VARIABLE changes OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(changes)
    string(APPEND KENNEL_GIT_COMMIT "-dirty")
  endif()
endif()
configure_file(${SOURCE_DIR}/scripts/version.h.in ${OUTPUT} @ONLY)
