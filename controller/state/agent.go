package state

// AgentState is agents.state. The API carries it as a string (Agent.state,
// EnrollResponse.state), so there is no enum to map to.
type AgentState string

// Agent states (agents_state_check).
const (
	AgentActive          AgentState = "active"
	AgentDraining        AgentState = "draining"
	AgentLost            AgentState = "lost"
	AgentOffline         AgentState = "offline"
	AgentRevoked         AgentState = "revoked"
	AgentPendingApproval AgentState = "pending_approval"
)

var agentStates = newVocab("agent state", AgentActive, AgentDraining, AgentLost, AgentOffline, AgentRevoked, AgentPendingApproval)

// AgentStates lists every agent state.
func AgentStates() []AgentState { return agentStates.values() }

// ParseAgentState reads a state from the database or a flag.
func ParseAgentState(s string) (AgentState, error) { return agentStates.parse(s) }
